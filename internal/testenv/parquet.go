package testenv

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// ParquetBytes sums the sizes of the Parquet files under dir (a table's
// warehouse folder), for benchmarks that report bytes per row.
func ParquetBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}
