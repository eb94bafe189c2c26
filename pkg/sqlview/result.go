package sqlview

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/duckdb/duckdb-go/v2"
)

// Kind tells a printer how to write a cell.
type Kind int

// The kinds of cell.
const (
	KindNull   Kind = iota // SQL NULL: printed as NULL in tables, null in JSON
	KindNumber             // a number: right-aligned in tables, bare in JSON
	KindBool               // a boolean: bare in JSON
	KindText               // anything else: a string
)

// Cell is one printed value: the exact text and its kind.
type Cell struct {
	Text string
	Kind Kind
}

// Result is a fully read query result.
type Result struct {
	Columns []Column
	Rows    [][]Cell
}

// Query runs one SQL statement and reads the whole result. Use Stream for
// results too large to hold.
func (e *Engine) Query(ctx context.Context, query string) (*Result, error) {
	r := &Result{}
	err := e.each(ctx, query, func(cols []Column) error {
		r.Columns = cols
		return nil
	}, func(row []Cell) error {
		r.Rows = append(r.Rows, append([]Cell(nil), row...))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// each runs query, calls head once with the columns and then row for every
// row. row's slice is reused between calls.
func (e *Engine) each(ctx context.Context, query string, head func([]Column) error, row func([]Cell) error) error {
	if strings.TrimSpace(query) == "" {
		return fmt.Errorf("%w: the SQL text is empty", ErrQuery)
	}
	rows, err := e.conn.QueryContext(ctx, query)
	if err != nil {
		return e.queryError(err)
	}
	defer func() { _ = rows.Close() }()
	types, err := rows.ColumnTypes()
	if err != nil {
		return e.queryError(err)
	}
	cols := make([]Column, len(types))
	for i, t := range types {
		cols[i] = Column{Name: t.Name(), Type: t.DatabaseTypeName()}
	}
	if err := head(cols); err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	cells := make([]Cell, len(cols))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return e.queryError(err)
		}
		for i, v := range vals {
			cells[i] = render(v, cols[i].Type)
		}
		if err := row(cells); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return e.queryError(err)
	}
	return nil
}

// unknownTable finds the name in DuckDB's "Table with name X does not exist".
var unknownTable = regexp.MustCompile(`Table with name "?([^"!\s]+)"? does not exist`)

// queryError wraps a DuckDB error. When a table is unknown it explains a
// table without a view (delete files, unreadable) or lists the tables there
// are.
func (e *Engine) queryError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := strings.TrimSpace(err.Error())
	m := unknownTable.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("%w: %s", ErrQuery, msg)
	}
	var refused []error
	names := make([]string, 0, len(e.tables))
	for _, t := range e.tables {
		names = append(names, t.Name)
		if (t.DeleteFiles > 0 || t.Err != nil) && (m[1] == t.Name || m[1] == catalog.TableNameFromIdent(t.Ident)) {
			refused = append(refused, refusal(t))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: %w", ErrQuery, errors.Join(refused...))
	}
	hint := "the catalog has no tables"
	if len(names) > 0 {
		hint = "tables in the catalog: " + strings.Join(names, ", ")
	}
	return fmt.Errorf("%w: %s\n%s", ErrQuery, msg, hint)
}

// render turns a scanned value into its exact text.
func render(v any, dbType string) Cell {
	switch v := v.(type) {
	case nil:
		return Cell{Kind: KindNull}
	case bool:
		return Cell{Text: strconv.FormatBool(v), Kind: KindBool}
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, uint:
		return Cell{Text: fmt.Sprint(v), Kind: KindNumber}
	case float32:
		return Cell{Text: strconv.FormatFloat(float64(v), 'g', -1, 32), Kind: floatKind(float64(v))}
	case float64:
		return Cell{Text: strconv.FormatFloat(v, 'g', -1, 64), Kind: floatKind(v)}
	case *big.Int:
		return Cell{Text: v.String(), Kind: KindNumber}
	case duckdb.Decimal:
		return Cell{Text: formatDecimal(v.Value, int(v.Scale)), Kind: KindNumber}
	case string:
		return Cell{Text: v, Kind: KindText}
	case []byte:
		if dbType == "UUID" && len(v) == 16 {
			return Cell{Text: fmt.Sprintf("%x-%x-%x-%x-%x", v[0:4], v[4:6], v[6:8], v[8:10], v[10:16]), Kind: KindText}
		}
		return Cell{Text: `\x` + hex.EncodeToString(v), Kind: KindText}
	case time.Time:
		return Cell{Text: formatTime(v, dbType), Kind: KindText}
	case duckdb.Interval:
		return Cell{Text: fmt.Sprintf("%d months %d days %d µs", v.Months, v.Days, v.Micros), Kind: KindText}
	case fmt.Stringer:
		return Cell{Text: v.String(), Kind: KindText}
	default:
		return Cell{Text: fmt.Sprint(v), Kind: KindText}
	}
}

func floatKind(f float64) Kind {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if strings.ContainsAny(s, "NI") { // NaN, ±Inf are not JSON numbers
		return KindText
	}
	return KindNumber
}

// formatDecimal prints unscaled/10^scale exactly, keeping every decimal
// place of the scale: (150, 2) → "1.50", (-5, 2) → "-0.05".
func formatDecimal(unscaled *big.Int, scale int) string {
	if unscaled == nil {
		return ""
	}
	digits := new(big.Int).Abs(unscaled).String()
	sign := ""
	if unscaled.Sign() < 0 {
		sign = "-"
	}
	if scale <= 0 {
		return sign + digits + strings.Repeat("0", -scale)
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

func formatTime(t time.Time, dbType string) string {
	switch {
	case dbType == "DATE":
		return t.Format(time.DateOnly)
	case strings.HasPrefix(dbType, "TIME") && !strings.HasPrefix(dbType, "TIMESTAMP"):
		return t.Format("15:04:05.999999")
	case dbType == "TIMESTAMP" || dbType == "TIMESTAMP_NS" || dbType == "TIMESTAMP_MS" || dbType == "TIMESTAMP_S":
		return t.Format("2006-01-02T15:04:05.999999999")
	default: // TIMESTAMPTZ
		return t.UTC().Format(time.RFC3339Nano)
	}
}
