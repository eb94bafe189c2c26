package fileingest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// progressBar draws "[#####.....]  45%  112.3 MiB/250.0 MiB  40.1 MiB/s  412,000 lines read  400,000 rows committed"
// on one line, at most every 200 ms.
type progressBar struct {
	w     io.Writer
	total int64
	start time.Time
	next  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, total int64, start time.Time) *progressBar {
	return &progressBar{w: w, total: total, start: start}
}

func (p *progressBar) update(offset int64, st *Stats) {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.Before(p.next) {
		return
	}
	p.next = now.Add(200 * time.Millisecond)
	p.draw(offset, st, now)
}

func (p *progressBar) draw(offset int64, st *Stats, now time.Time) {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(offset)/float64(p.total), 1)
	}
	fill := int(frac * width)
	rate := 0.0
	if el := now.Sub(p.start).Seconds(); el > 0 {
		rate = float64(offset) / el
	}
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %s/%s  %s/s  %s lines read  %s rows committed ",
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), frac*100,
		FormatBytes(offset), FormatBytes(p.total), FormatBytes(int64(rate)), FormatCount(st.Lines), FormatCount(st.Rows))
	p.drawn = true
}

// done draws the final state and ends the line.
func (p *progressBar) done(st *Stats) {
	if p.w == nil || !p.drawn {
		return
	}
	p.draw(p.total, st, time.Now())
	fmt.Fprintln(p.w)
}

// FormatBytes prints a byte count with a binary unit: "112.3 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// FormatCount prints an integer with thousands separators: "1,234,567".
func FormatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
