package deploy

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/paystream/paystream/pkg/iceberg"
)

// checkDeadLetterTable reports what is wrong with the Glue table over the
// dead-letter store: its columns must be the JSON fields of
// iceberg.DeadLetterRecord, its SerDe the JSON one, its location the
// published objects' folder only, and a named query must count rejections
// by reason.
func checkDeadLetterTable(m *module) []string {
	var problems []string
	tables := m.blocks("resource", "aws_glue_catalog_table", "dead_letters")
	if len(tables) != 1 {
		return []string{"no aws_glue_catalog_table.dead_letters"}
	}
	var sd *hclsyntax.Block
	for _, b := range tables[0].Body.Blocks {
		if b.Type == "storage_descriptor" {
			sd = b
		}
	}
	if sd == nil {
		return []string{"dead_letters has no storage_descriptor"}
	}
	var cols []string
	serde := ""
	for _, b := range sd.Body.Blocks {
		switch b.Type {
		case "columns":
			if a, ok := b.Body.Attributes["name"]; ok {
				n, _ := literalString(a.Expr)
				cols = append(cols, n)
			}
		case "ser_de_info":
			if a, ok := b.Body.Attributes["serialization_library"]; ok {
				serde, _ = literalString(a.Expr)
			}
		}
	}
	if want := recordFields(); !slices.Equal(cols, want) {
		problems = append(problems, "dead_letters columns "+strings.Join(cols, ",")+", want the fields of iceberg.DeadLetterRecord: "+strings.Join(want, ","))
	}
	if serde != "org.openx.data.jsonserde.JsonSerDe" {
		problems = append(problems, "dead_letters SerDe "+serde+", want the JSON SerDe")
	}
	problems = append(problems, checkDeadLetterLocation(sd)...)
	found := false
	for _, q := range m.blocks("resource", "aws_athena_named_query") {
		if a, ok := q.Body.Attributes["query"]; ok {
			refs := traversalNames(a.Expr)
			if slices.Contains(refs, "aws_glue_catalog_table.dead_letters") && strings.Contains(sourceText(a.Expr), "UNNEST(reasons)") &&
				strings.Contains(sourceText(a.Expr), "GROUP BY reason") {
				found = true
			}
		}
	}
	if !found {
		problems = append(problems, "no aws_athena_named_query groups aws_glue_catalog_table.dead_letters by reason")
	}
	return problems
}

// checkDeadLetterLocation demands warehouse/prefix/table/: the published
// objects, not the pending ones beside them.
func checkDeadLetterLocation(sd *hclsyntax.Block) []string {
	a, ok := sd.Body.Attributes["location"]
	if !ok {
		return []string{"dead_letters has no location"}
	}
	text, _ := render(a.Expr)
	refs := traversalNames(a.Expr)
	want := []string{"local.warehouse_uri", "local.dead_letter_prefix", "local.table_identifier"}
	if text != "X/X/X/" || !slices.Equal(refs, want) {
		return []string{"dead_letters location " + sourceText(a.Expr) + `, want "${local.warehouse_uri}/${local.dead_letter_prefix}/${local.table_identifier}/"`}
	}
	return nil
}

// recordFields are the JSON names of iceberg.DeadLetterRecord's fields.
func recordFields() []string {
	var out []string
	rt := reflect.TypeFor[iceberg.DeadLetterRecord]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

// traversalNames lists the first two parts of every reference in e, in order.
func traversalNames(e hclsyntax.Expression) []string {
	var out []string
	for _, tr := range e.Variables() {
		name := tr.RootName()
		if len(tr) > 1 {
			if ta, ok := tr[1].(hcl.TraverseAttr); ok {
				name += "." + ta.Name
			}
		}
		out = append(out, name)
	}
	return out
}

// sourceText is the expression as written in its file.
func sourceText(e hclsyntax.Expression) string {
	var b strings.Builder
	walk(e, func(n hclsyntax.Node) {
		if l, ok := n.(*hclsyntax.LiteralValueExpr); ok {
			if s, ok := literalString(l); ok {
				b.WriteString(s)
			}
		}
	})
	return b.String()
}

func TestDeadLetterTable(t *testing.T) {
	for _, p := range checkDeadLetterTable(terraform(t)) {
		t.Error(p)
	}
}

func TestDeadLetterTableCheckCatchesMistakes(t *testing.T) {
	m := parseSource(t, `
resource "aws_glue_catalog_table" "dead_letters" {
  storage_descriptor {
    location = "${local.warehouse_uri}/${local.dead_letter_prefix}_pending/${local.table_identifier}/"
    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
    }
    columns {
      name = "shard_id"
      type = "string"
    }
  }
}
`)
	got := checkDeadLetterTable(m)
	for _, want := range []string{"columns", "SerDe", "location", "named_query"} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("the check missed a wrong %s: %q", want, got)
		}
	}
}
