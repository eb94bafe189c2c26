package status

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/iceberg"
)

// tableLoader is the catalog call IcebergTable makes.
type tableLoader interface {
	LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error)
}

var _ TableReader = IcebergTable{}

// IcebergTable reads the consumer's positions from an Iceberg table.
type IcebergTable struct {
	Catalog tableLoader // catalog.Catalog from iceberg.OpenCatalog
	Ident   table.Identifier
}

// State implements TableReader. A missing table is reported as such, with
// what to do.
func (t IcebergTable) State(ctx context.Context) (TableState, error) {
	tbl, err := t.Catalog.LoadTable(ctx, t.Ident)
	if err != nil {
		name := strings.Join(t.Ident, ".")
		if errors.Is(err, catalog.ErrNoSuchTable) || errors.Is(err, catalog.ErrNoSuchNamespace) {
			return TableState{}, fmt.Errorf("table %s not found in the catalog: check --table, --catalog and --warehouse (the consumer creates the table when it first starts)", name)
		}
		return TableState{}, fmt.Errorf("load table %s: %w", name, err)
	}
	st := TableState{Positions: iceberg.TablePositions(tbl), ShardLastCommit: iceberg.ShardLastCommits(tbl)}
	if s := tbl.CurrentSnapshot(); s != nil {
		st.LastCommit = time.UnixMilli(s.TimestampMs)
	}
	return st, nil
}
