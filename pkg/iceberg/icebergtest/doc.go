// Package icebergtest opens a real payment table for the tests of packages
// that commit to it (the commit step, file ingest, the query binary): the
// embedded SQLite catalog and a file warehouse in a test's temporary
// directory, or any catalog a test configures. No fakes: the table is the
// one the consumer writes.
package icebergtest
