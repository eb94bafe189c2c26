package sqlview

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Format is how results are printed.
type Format string

// Formats.
const (
	// FormatTable is an aligned text table with a row count, for people.
	FormatTable Format = "table"
	// FormatCSV is RFC 4180 CSV with a header line; NULL is an empty field.
	FormatCSV Format = "csv"
	// FormatJSON is one JSON array of objects keyed by column name.
	// Numbers (decimals included) are JSON numbers written exactly;
	// timestamps are strings.
	FormatJSON Format = "json"
)

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatTable, FormatCSV, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("format %q is not known; use table, csv or json", s)
}

// printer receives a result: head once, then rows, then end.
type printer interface {
	head(cols []Column) error
	row(cells []Cell) error
	end() error
}

func newPrinter(w io.Writer, f Format) (printer, error) {
	switch f {
	case FormatTable:
		return &tablePrinter{w: w}, nil
	case FormatCSV:
		return &csvPrinter{w: csv.NewWriter(w)}, nil
	case FormatJSON:
		return &jsonPrinter{w: bufio.NewWriter(w)}, nil
	}
	return nil, fmt.Errorf("format %q is not known; use table, csv or json", f)
}

// Stream runs query and prints its rows to w as they arrive (the table
// format holds them to align columns). It returns the number of rows.
func (e *Engine) Stream(ctx context.Context, query string, w io.Writer, f Format) (int64, error) {
	p, err := newPrinter(w, f)
	if err != nil {
		return 0, err
	}
	var n int64
	err = e.each(ctx, query, p.head, func(cells []Cell) error {
		n++
		return p.row(cells)
	})
	if err != nil {
		return n, err
	}
	return n, p.end()
}

// Write prints a result that was read whole.
func (r *Result) Write(w io.Writer, f Format) error {
	p, err := newPrinter(w, f)
	if err != nil {
		return err
	}
	if err := p.head(r.Columns); err != nil {
		return err
	}
	for _, row := range r.Rows {
		if err := p.row(row); err != nil {
			return err
		}
	}
	return p.end()
}

type tablePrinter struct {
	w     io.Writer
	cols  []Column
	rows  [][]Cell
	width []int
}

func (p *tablePrinter) head(cols []Column) error {
	p.cols = cols
	p.width = make([]int, len(cols))
	for i, c := range cols {
		p.width[i] = utf8.RuneCountInString(c.Name)
	}
	return nil
}

func (p *tablePrinter) row(cells []Cell) error {
	row := append([]Cell(nil), cells...)
	for i, c := range row {
		if n := utf8.RuneCountInString(cellText(c)); n > p.width[i] {
			p.width[i] = n
		}
	}
	p.rows = append(p.rows, row)
	return nil
}

func cellText(c Cell) string {
	if c.Kind == KindNull {
		return "NULL"
	}
	return strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(c.Text)
}

func (p *tablePrinter) end() error {
	bw := bufio.NewWriter(p.w)
	pad := func(s string, w int, right bool) {
		n := w - utf8.RuneCountInString(s)
		if right {
			bw.WriteString(strings.Repeat(" ", n))
			bw.WriteString(s)
		} else {
			bw.WriteString(s)
			bw.WriteString(strings.Repeat(" ", n))
		}
	}
	line := func(cells func(i int) (string, bool)) {
		for i := range p.cols {
			if i > 0 {
				bw.WriteString(" | ")
			}
			s, right := cells(i)
			if i == len(p.cols)-1 && !right {
				bw.WriteString(s) // no trailing blanks
				continue
			}
			pad(s, p.width[i], right)
		}
		bw.WriteByte('\n')
	}
	line(func(i int) (string, bool) { return p.cols[i].Name, false })
	for i := range p.cols {
		if i > 0 {
			bw.WriteString("-+-")
		}
		bw.WriteString(strings.Repeat("-", p.width[i]))
	}
	bw.WriteByte('\n')
	for _, r := range p.rows {
		line(func(i int) (string, bool) { return cellText(r[i]), r[i].Kind == KindNumber })
	}
	if len(p.rows) == 1 {
		bw.WriteString("(1 row)\n")
	} else {
		fmt.Fprintf(bw, "(%d rows)\n", len(p.rows))
	}
	return bw.Flush()
}

type csvPrinter struct {
	w   *csv.Writer
	rec []string
}

func (p *csvPrinter) head(cols []Column) error {
	p.rec = make([]string, len(cols))
	for i, c := range cols {
		p.rec[i] = c.Name
	}
	return p.w.Write(p.rec)
}

func (p *csvPrinter) row(cells []Cell) error {
	for i, c := range cells {
		p.rec[i] = c.Text
	}
	return p.w.Write(p.rec)
}

func (p *csvPrinter) end() error {
	p.w.Flush()
	return p.w.Error()
}

type jsonPrinter struct {
	w    *bufio.Writer
	keys [][]byte
	n    int
	buf  bytes.Buffer
	enc  *json.Encoder
}

// str writes s as a JSON string without HTML escaping.
func (p *jsonPrinter) str(s string) error {
	if p.enc == nil {
		p.enc = json.NewEncoder(&p.buf)
		p.enc.SetEscapeHTML(false)
	}
	p.buf.Reset()
	if err := p.enc.Encode(s); err != nil {
		return err
	}
	_, err := p.w.Write(bytes.TrimSuffix(p.buf.Bytes(), []byte("\n")))
	return err
}

func (p *jsonPrinter) head(cols []Column) error {
	p.keys = make([][]byte, len(cols))
	for i, c := range cols {
		k, err := json.Marshal(c.Name)
		if err != nil {
			return err
		}
		p.keys[i] = k
	}
	_, err := p.w.WriteString("[")
	return err
}

func (p *jsonPrinter) row(cells []Cell) error {
	if p.n > 0 {
		p.w.WriteString(",")
	}
	p.n++
	p.w.WriteString("\n  {")
	for i, c := range cells {
		if i > 0 {
			p.w.WriteString(", ")
		}
		p.w.Write(p.keys[i])
		p.w.WriteString(": ")
		switch c.Kind {
		case KindNull:
			p.w.WriteString("null")
		case KindNumber, KindBool:
			p.w.WriteString(c.Text)
		default:
			if err := p.str(c.Text); err != nil {
				return err
			}
		}
	}
	_, err := p.w.WriteString("}")
	return err
}

func (p *jsonPrinter) end() error {
	if p.n > 0 {
		p.w.WriteString("\n")
	}
	p.w.WriteString("]\n")
	return p.w.Flush()
}
