// Package units prints counts and sizes for people: "1,234,567" and
// "112.3 MiB", as the consumer's summaries, progress bars and the metrics
// report show them.
package units
