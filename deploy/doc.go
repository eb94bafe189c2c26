// Package deploy holds no code: it is the home of the deployment's tests.
//
// The deployment itself is the Dockerfile at the repository root and the
// Terraform configuration in deploy/terraform (see deploy/README.md). What
// can be checked without Docker or AWS is checked here, with `go test
// ./deploy/`:
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
//
// `terraform fmt`, `terraform validate` and tfsec run separately:
// `make tf-validate`.
package deploy
