// Package deploy holds no code: it is the home of the deployment's tests.
//
// The deployment itself is the Dockerfile at the repository root, the
// Terraform configuration in deploy/terraform (see deploy/README.md), the
// Prometheus configuration and alert rules in deploy/prometheus and the
// Grafana dashboard in deploy/grafana. What can be checked without Docker or
// AWS is checked here, with `go test ./deploy/`:
//
//   - taskdef_test.go: every environment variable of the consumer container
//     in the ECS task definition is a real consumer setting, read from the
//     `consumer --help` of a freshly built ./cmd/consumer (a typo fails); the
//     lease table is not created by the consumer; ECS waits longer than the
//     consumer's shutdown timeout; the health-check command works against a
//     live /healthz.
//   - iam_test.go: every IAM statement the consumer, ECS or the producer gets
//     names explicit actions (no "*" or "service:*") and explicit resources;
//     the only exceptions are listed in the test with the reason.
//   - dockerfile_test.go: the Dockerfile, parsed with BuildKit's parser,
//     builds with `make build-static`, ships on distroless static, runs as a
//     non-root user, and has the consumer as its entrypoint.
//   - static_test.go: `make build-static`, run in a copy of the Docker build
//     context (.dockerignore applied), yields static binaries (no ELF
//     interpreter, no dynamic section) that print the stamped version.
//   - deploy_test.go: the shipped environments (environments/*.tfvars) set
//     only declared variables, and their task sizes are valid Fargate sizes.
//   - prometheus_test.go: the alert rules (prometheus/alerts.yml), by
//     Prometheus's own promtool: `promtool check rules`, `promtool check
//     config` on prometheus.yml, and `promtool test rules` on
//     prometheus/alerts_test.yml, whose tests must give every alert a series
//     set on which it fires (labels and annotations expected) and one on which
//     it stays quiet, with series named and labelled as the consumer exports
//     them. Copies of the rules with one alert broken (syntax, misspelt metric,
//     a label aggregated away, a threshold, a missing for) must be rejected.
//   - grafana_test.go: the dashboard (grafana/paystream.json): panel ids,
//     grid and data source; every query, variables substituted as Grafana
//     does, as a recording rule for `promtool check rules`, and evaluated by
//     `promtool test rules` on a series set of every consumer metric, where it
//     must return data. Broken queries must be rejected.
//
// The consumer's metrics, for the last two, are listed in
// testdata/consumer-metrics.txt (name, type, labels), which cmd/consumer's
// TestConsumerMetricsList checks against the consumer's registry and
// rewrites with -update.
//
// promtool comes from Debian's prometheus package: `make deps` (and so `make
// test`) installs it with scripts/ensure-promtool.sh. Without it these tests
// are skipped, except under CI, where they fail.
//
// `terraform fmt`, `terraform validate` and tfsec run separately:
// `make tf-validate`.
package deploy
