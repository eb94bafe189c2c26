package fileingest

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/paystream/paystream/internal/units"
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
		units.Bytes(offset), units.Bytes(p.total), units.Bytes(int64(rate)), units.Count(st.Lines), units.Count(st.Rows))
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
