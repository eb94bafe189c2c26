// Package iceberg is paystream's Iceberg side: opening the catalog,
// bootstrapping the payment table, the exactly-once commit protocol and the
// dead-letter store. The contract is written out below; DESIGN.md beside
// this file explains the commit protocol step by step.
package iceberg
