// Package testenv starts the real servers integration tests talk to.
//
// Moto starts moto_server (the Python AWS emulator serving Kinesis,
// DynamoDB, S3 and Glue on one port) on a free loopback port for one test
// and stops it when the test ends. When moto_server is not installed the test
// is skipped with a message saying how to install it, except under CI (env CI
// set), where a missing server is a failure: CI installs it.
package testenv
