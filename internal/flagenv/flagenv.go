package flagenv

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Prefix is put in front of every environment variable name.
const Prefix = "PAYSTREAM_"

// EnvName returns the environment variable bound to a flag name:
// "flush-interval" → "PAYSTREAM_FLUSH_INTERVAL".
func EnvName(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Names returns the environment variable names of every flag in fs, sorted.
func Names(fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) { out = append(out, EnvName(f.Name)) })
	sort.Strings(out)
	return out
}

// Parse parses args into fs, then fills every flag that was not given on the
// command line from its environment variable (lookup is usually os.LookupEnv).
// An environment value that does not parse is reported with the variable's
// name so a person knows where to look.
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		v, ok := lookup(EnvName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("environment %s=%q (flag --%s): %w", EnvName(f.Name), v, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// Usage writes a help text listing every flag with its environment variable,
// default and description. header, when not empty, is printed first.
func Usage(fs *flag.FlagSet, w io.Writer, header string) {
	if header != "" {
		fmt.Fprintln(w, strings.TrimRight(header, "\n"))
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Flags (each may also be set by the environment variable shown; a flag wins over its variable):")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s\n      env %s", line, strings.ReplaceAll(usage, "\n", "\n      "), EnvName(f.Name))
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, ", default %s", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// OSLookup is os.LookupEnv, named for callers that pass it to Parse.
var OSLookup = os.LookupEnv

// UsageEnvNames returns the environment variable names a Usage text lists,
// in order. Tests use it to check that documentation names every setting.
func UsageEnvNames(usage string) []string {
	var out []string
	for _, line := range strings.Split(usage, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "env "); ok {
			name, _, _ := strings.Cut(rest, ",")
			out = append(out, name)
		}
	}
	return out
}

// Undocumented returns the settings a Usage text lists that doc does not
// name both as `--flag` and as `PAYSTREAM_FLAG` (each in backquotes, as the
// README's tables write them). Tests use it to keep docs and code in step.
func Undocumented(doc []byte, usage string) []string {
	var missing []string
	for _, env := range UsageEnvNames(usage) {
		flagName := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, Prefix)), "_", "-")
		if !bytes.Contains(doc, []byte("`"+env+"`")) || !bytes.Contains(doc, []byte("`"+flagName+"`")) {
			missing = append(missing, flagName+" ("+env+")")
		}
	}
	return missing
}
