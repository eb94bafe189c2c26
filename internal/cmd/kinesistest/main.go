// Command kinesistest runs the internal/kinesistest Kinesis emulator as a
// process of its own, for harnesses that hand an endpoint to other
// processes: the fault-injection harness (internal/chaos) reads with
// enhanced fan-out against it, since moto_server does not serve
// SubscribeToShard.
//
// It listens on --addr, prints "kinesistest listening on URL" on stdout
// once it serves, and stops on SIGTERM or SIGINT. Its state (streams,
// records, stream consumers) is in memory and dies with it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/paystream/paystream/internal/kinesistest"
)

func main() {
	fs := flag.NewFlagSet("kinesistest", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0: a free port)")
	lifetime := fs.Duration("subscription-lifetime", 5*time.Minute, "how long a SubscribeToShard event stream lasts before the server ends it (AWS: 5m)")
	resubscribe := fs.Duration("resubscribe-window", 5*time.Second, "how soon after a successful SubscribeToShard the same consumer may subscribe to the same shard again (AWS: 5s; 0: no limit)")
	answer := fs.Duration("answer-delay", 0, "hold every answer back this long, as a network would (clients in other processes on a loaded machine want some: see kinesistest.WithAnswerDelay)")
	reshard := fs.Duration("reshard-delay", 0, "how long a stream stays UPDATING after SplitShard, MergeShards or UpdateShardCount")
	level := fs.String("log-level", "info", "debug logs every call and every subscription's end; info only server errors")
	_ = fs.Parse(os.Args[1:])

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "kinesistest: --log-level %q: use debug, info, warn or error\n", *level)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	srv, err := kinesistest.NewServer(
		kinesistest.WithAddr(*addr),
		kinesistest.WithSubscriptionLifetime(*lifetime),
		kinesistest.WithResubscribeWindow(*resubscribe),
		kinesistest.WithReshardDelay(*reshard),
		kinesistest.WithAnswerDelay(*answer),
		kinesistest.WithLogger(log),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kinesistest: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fmt.Printf("kinesistest listening on %s\n", srv.URL)
	<-ctx.Done()
	srv.Close()
}
