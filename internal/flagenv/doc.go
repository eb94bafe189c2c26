// Package flagenv binds every flag of a flag.FlagSet to an environment
// variable: --some-flag is also PAYSTREAM_SOME_FLAG. Flags given on the
// command line win over the environment; the environment wins over the
// flag's default.
//
// All three binaries (consumer, producer, query) parse their configuration
// through Parse, so the convention holds everywhere and --help lists both
// spellings of each setting.
package flagenv
