// Command consumer is the paystream service: it leases the stream's shards,
// micro-batches their records, drops duplicate event_ids and commits ZSTD
// Parquet to the Iceberg table with exactly-once shard positions.
//
//	consumer [flags]                  run the service until SIGTERM/SIGINT
//	consumer ingest-file PATH|- ...   load an NDJSON file through the same path
//	consumer status                   per-shard owner, state and lag; exit 3 when stalled
//	consumer replay-dead-letters      commit dead letters the current decoder accepts
//	consumer maintain                 run table maintenance (compaction, expiry, orphans) once
//	consumer healthcheck              probe a running consumer's /healthz (container health check)
//	consumer --help                   every flag with its PAYSTREAM_* variable
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "ingest-file":
		err = runIngestFile(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "status":
		err = runStatus(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "replay-dead-letters":
		err = runReplay(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "maintain":
		err = runMaintain(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "healthcheck":
		err = runHealthcheck(ctx, os.Args[2:], os.LookupEnv, os.Stdout)
	default:
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err and maps it to an exit status: 0 ok, 2 usage, 3 an
// unhealthy status report (already printed), 1 other.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUnhealthy):
		fmt.Fprintln(stderr, "consumer status: unhealthy: a shard is stalled or unowned (see PROBLEMS)")
		return statusExitProblems
	case errors.As(err, new(*usageError)):
		fmt.Fprintln(stderr, "consumer:", err)
		fmt.Fprintln(stderr, "run 'consumer --help' for every flag")
		return 2
	default:
		fmt.Fprintln(stderr, "consumer:", err)
		return 1
	}
}

// usageError is a configuration mistake the user must fix.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
