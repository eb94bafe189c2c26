//go:build linux

package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/chaos"
)

// binaries builds the consumer and producer once per test binary.
func binaries(t *testing.T) chaos.Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos tests run the real binaries against moto; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := chaos.ModuleDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bins, err := chaos.Build(ctx, dir, os.Getenv("CHAOS_RACE") != "")
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

var (
	outOnce sync.Once
	outDir  string
)

// trialDir makes the folder for one trial's logs under CHAOS_OUT (default a
// new folder in the system temp dir).
func trialDir(t *testing.T, name string) string {
	t.Helper()
	outOnce.Do(func() {
		outDir = os.Getenv("CHAOS_OUT")
		if outDir == "" {
			outDir = filepath.Join(os.TempDir(), "paystream-chaos-"+time.Now().Format("20060102-150405"))
		}
	})
	dir := filepath.Join(outDir, name)
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newEnv starts moto for t (its Kinesis resharding patched, see
// chaos.StartMoto) and prepares a trial folder on the SQLite catalog.
func newEnv(t *testing.T, name string) *chaos.Env {
	t.Helper()
	return newEnvOn(t, name, chaos.CatalogSQLite)
}

// newEnvOn is newEnv on the catalog kind (chaos.CatalogSQLite or
// chaos.CatalogGlue).
func newEnvOn(t *testing.T, name, kind string) *chaos.Env {
	t.Helper()
	bins := binaries(t)
	dir := trialDir(t, name)
	moto, err := chaos.StartMoto(dir)
	if errors.Is(err, chaos.ErrNoMoto) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moto.Stop)
	env, err := chaos.NewEnv(context.Background(), dir, moto.URL, bins, kind)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// newTrialEnv is newEnvOn for trial cfg: in read mode efo it also starts
// the kinesistest emulator process (subscriptions ending after
// cfg.SubscriptionLifetime) and points the trial's Kinesis at it.
func newTrialEnv(t *testing.T, name, kind string, cfg chaos.TrialConfig) *chaos.Env {
	t.Helper()
	env := newEnvOn(t, name, kind)
	if cfg.ReadMode != chaos.ReadEFO {
		return env
	}
	k, err := chaos.StartKinesis(env.Dir, env.Bins.Kinesis, chaos.KinesisOptions{SubscriptionLifetime: cfg.SubscriptionLifetime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	env.UseKinesis(k.URL)
	return env
}

// keepOnFailure removes the trial's folder when the test passed, unless
// CHAOS_KEEP is set; on failure it prints where the logs are.
func keepOnFailure(t *testing.T, env *chaos.Env, replay string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs, sent log, timeline and data kept in %s", env.Dir)
			if replay != "" {
				t.Logf("replay: %s", replay)
			}
			return
		}
		if os.Getenv("CHAOS_KEEP") == "" {
			_ = os.RemoveAll(env.Dir)
		}
	})
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return def
}

// TestChaos runs CHAOS_TRIALS (default 2) random trials on the catalog
// CHAOS_CATALOG names (sqlite, the default, or glue) and fails on any
// loss, duplicate, missing dead letter or order violation. CHAOS_SEED=N
// replays the trial with seed N; CHAOS_LONG=1 makes trials longer (the
// RELIABILITY.md runs); CHAOS_AGGREGATE=1 runs the producer with
// --aggregate and the consumers with a small --flush-rows, so batches end
// inside KPL aggregates; CHAOS_READ_MODE=efo reads with enhanced fan-out
// from a kinesistest emulator process (moto serves no SubscribeToShard);
// CHAOS_KEEP=1 keeps the folders of passing trials.
func TestChaos(t *testing.T) {
	kind, err := chaos.ParseCatalog(os.Getenv("CHAOS_CATALOG"))
	if err != nil {
		t.Fatal(err)
	}
	readMode, err := chaos.ParseReadMode(os.Getenv("CHAOS_READ_MODE"))
	if err != nil {
		t.Fatal(err)
	}
	runChaos(t, kind, readMode, 2)
}

// TestChaosGlue runs 2 short random trials on the Glue catalog and S3
// warehouse when CHAOS_CATALOG is not set, so a plain test run covers both
// catalogs (make chaos sets CHAOS_CATALOG and runs TestChaos alone).
func TestChaosGlue(t *testing.T) {
	if os.Getenv("CHAOS_CATALOG") != "" || os.Getenv("CHAOS_LONG") != "" || os.Getenv("CHAOS_SEED") != "" || os.Getenv("CHAOS_READ_MODE") != "" {
		t.Skip("CHAOS_CATALOG, CHAOS_LONG, CHAOS_SEED or CHAOS_READ_MODE is set: TestChaos runs the trials asked for")
	}
	runChaos(t, chaos.CatalogGlue, "", 2)
}

// TestChaosEFO runs 1 short random trial in read mode efo (the consumers
// subscribe to the kinesistest emulator process) when no CHAOS_ variable
// picks the trials, so a plain test run covers the fan-out reader too.
func TestChaosEFO(t *testing.T) {
	if os.Getenv("CHAOS_CATALOG") != "" || os.Getenv("CHAOS_LONG") != "" || os.Getenv("CHAOS_SEED") != "" || os.Getenv("CHAOS_READ_MODE") != "" {
		t.Skip("CHAOS_CATALOG, CHAOS_LONG, CHAOS_SEED or CHAOS_READ_MODE is set: TestChaos runs the trials asked for")
	}
	runChaos(t, chaos.CatalogSQLite, chaos.ReadEFO, 1)
}

// runChaos runs the trials TestChaos describes on the catalog kind in
// read mode readMode ("" the consumer's default), trials of them unless
// CHAOS_TRIALS says.
func runChaos(t *testing.T, kind, readMode string, trials int) {
	mode, err := chaos.ParseCommitMode(os.Getenv("CHAOS_COMMIT_MODE"))
	if err != nil {
		t.Fatal(err)
	}
	trials = envInt("CHAOS_TRIALS", trials)
	long := os.Getenv("CHAOS_LONG") != ""
	aggregate := os.Getenv("CHAOS_AGGREGATE") != ""
	var seeds []uint64
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want a number", s)
		}
		seeds = []uint64{seed}
	} else {
		base := rand.Uint64() % 1_000_000
		for i := range trials {
			seeds = append(seeds, base+uint64(i))
		}
	}
	var reports []*chaos.Report
	for _, seed := range seeds {
		cfg := chaos.WithCommitMode(chaos.Plan(seed, !long, kind), mode)
		replay := fmt.Sprintf("make chaos SEED=%d CHAOS_CATALOG=%s", seed, kind)
		if long {
			replay += " CHAOS_LONG=1"
		}
		name := kind
		if mode != "" {
			replay += " CHAOS_COMMIT_MODE=" + mode
			name += "-" + mode
		}
		if aggregate {
			cfg = chaos.WithAggregate(cfg)
			replay += " CHAOS_AGGREGATE=1"
			name += "-kpl"
		}
		if readMode != "" {
			cfg = chaos.WithReadMode(cfg, readMode)
			replay += " CHAOS_READ_MODE=" + readMode
			name += "-" + readMode
		}
		t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
			env := newTrialEnv(t, fmt.Sprintf("trial-%s-%d", name, seed), kind, cfg)
			keepOnFailure(t, env, replay)
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+cfg.DrainTimeout+3*time.Minute)
			defer cancel()
			r := chaos.NewTrial(cfg, env).Run(ctx)
			reports = append(reports, r)
			t.Log("\n" + r.Details())
			if r.Failed() {
				t.Errorf("trial seed %d on %s failed: %s", seed, kind, r.TableRow())
			}
		})
	}
	var b strings.Builder
	chaos.WriteTable(&b, reports)
	b.WriteString("\n" + chaos.Summary(reports))
	t.Log("\n" + b.String())
	if outDir != "" {
		f, err := os.OpenFile(filepath.Join(outDir, "results.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprint(f, b.String())
			for _, r := range reports {
				fmt.Fprintln(f, r.Details())
			}
			_ = f.Close()
		}
	}
}
