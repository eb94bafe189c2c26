package motopatch

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

//go:embed sitecustomize.py
var source []byte

// A Patch is one behaviour of sitecustomize.py: the environment variable
// that switches it on and the line it prints once applied.
type Patch struct {
	Name   string
	Env    string
	Marker string
}

var (
	// KinesisReshard routes records only to open shards, keeps split and
	// merged parents' records where they are, and ends a closed shard read
	// to its end (no NextShardIterator), as Kinesis does.
	KinesisReshard = Patch{
		Name:   "kinesis resharding",
		Env:    "PAYSTREAM_MOTO_KINESIS_RESHARD",
		Marker: "paystream-motopatch: kinesis resharding patched",
	}
	// KinesisAtomic makes moto's Kinesis calls on a shard's records
	// (GetRecords, PutRecord(s), GetShardIterator, ListShards,
	// DescribeStream, resharding) atomic with respect to each other:
	// without it a GetRecords under concurrent PutRecords fails with HTTP
	// 500 ("OrderedDict mutated during iteration"). Since every call then
	// waits for the others, it also makes moto's per-record work O(1)
	// (moto copies all of a shard's keys for every record put) and
	// GetRecords O(records returned) instead of O(records in the shard).
	KinesisAtomic = Patch{
		Name:   "kinesis atomic",
		Env:    "PAYSTREAM_MOTO_KINESIS_ATOMIC",
		Marker: "paystream-motopatch: kinesis record operations atomic",
	}
	// GlueVersionID makes Glue UpdateTable a compare-and-swap on VersionId:
	// a VersionId other than the table's current one fails with
	// ConcurrentModificationException, atomically with respect to other
	// UpdateTables, as AWS Glue does.
	GlueVersionID = Patch{
		Name:   "glue VersionId",
		Env:    "PAYSTREAM_MOTO_GLUE_VERSIONID",
		Marker: "paystream-motopatch: glue UpdateTable VersionId enforced",
	}
	// DynamoDBAtomic makes each DynamoDB item operation atomic with respect
	// to the others, as DynamoDB applies a conditional write: moto_server's
	// threads could otherwise let two concurrent conditional writes on one
	// item both pass.
	DynamoDBAtomic = Patch{
		Name:   "dynamodb atomic",
		Env:    "PAYSTREAM_MOTO_DYNAMODB_ATOMIC",
		Marker: "paystream-motopatch: dynamodb item operations atomic",
	}
)

// All lists every patch.
var All = []Patch{KinesisReshard, KinesisAtomic, GlueVersionID, DynamoDBAtomic}

// Env writes sitecustomize.py into dir (created if missing) and returns
// the environment to start moto_server with: the current environment with
// dir first on PYTHONPATH and each patch's variable set to "1". Patches not
// listed are switched off explicitly, so an inherited variable cannot turn
// one on.
func Env(dir string, patches ...Patch) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("moto patch folder: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sitecustomize.py"), source, 0o644); err != nil {
		return nil, fmt.Errorf("write moto patch: %w", err)
	}
	pp := dir
	if old := os.Getenv("PYTHONPATH"); old != "" {
		pp += string(os.PathListSeparator) + old
	}
	env := append(os.Environ(), "PYTHONPATH="+pp)
	for _, p := range All {
		env = append(env, p.Env+"=0")
	}
	for _, p := range patches {
		env = append(env, p.Env+"=1")
	}
	return env, nil
}

// Check returns an error naming every patch whose marker is missing from
// moto_server's output (read after the server answered: Python prints the
// markers before moto starts serving).
func Check(output string, patches ...Patch) error {
	var errs []error
	for _, p := range patches {
		if !strings.Contains(output, p.Marker) {
			errs = append(errs, fmt.Errorf("moto_server started without the %s patch (is sitecustomize shadowed, or did moto change?)", p.Name))
		}
	}
	return errors.Join(errs...)
}
