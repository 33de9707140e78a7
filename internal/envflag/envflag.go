// Package envflag defines command-line flags that can also be set from
// environment variables, so that every binary is configured the same way
// locally (flags) and in Kubernetes (environment). A flag given on the command
// line wins over its variable.
package envflag

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// FlagSet is a flag.FlagSet whose flags each name an environment variable.
type FlagSet struct {
	*flag.FlagSet
	envOf map[string]string // flag name -> environment variable
}

// New returns an empty set that reports parse errors rather than exiting.
func New(name string) *FlagSet {
	return &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), envOf: map[string]string{}}
}

// String defines a string flag.
func (f *FlagSet) String(p *string, name, env, def, usage string) {
	f.StringVar(p, name, def, f.usage(name, env, usage))
}

// Duration defines a duration flag.
func (f *FlagSet) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.DurationVar(p, name, def, f.usage(name, env, usage))
}

// Float64 defines a floating-point flag.
func (f *FlagSet) Float64(p *float64, name, env string, def float64, usage string) {
	f.Float64Var(p, name, def, f.usage(name, env, usage))
}

// Bool defines a boolean flag.
func (f *FlagSet) Bool(p *bool, name, env string, def bool, usage string) {
	f.BoolVar(p, name, def, f.usage(name, env, usage))
}

// Level defines a log level flag: debug, info, warn or error.
func (f *FlagSet) Level(p *slog.Level, name, env string, usage string) {
	f.TextVar(p, name, slog.LevelInfo, f.usage(name, env, usage))
}

func (f *FlagSet) usage(name, env, usage string) string {
	f.envOf[name] = env
	return fmt.Sprintf("%s (env %s)", usage, env)
}

// Parse parses args, then sets every flag not given there from its
// environment variable, when that is set. A malformed value names its source.
func (f *FlagSet) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for name, env := range f.envOf {
		v, ok := os.LookupEnv(env)
		if !ok || given[name] {
			continue
		}
		if err := f.Set(name, v); err != nil {
			return fmt.Errorf("%s=%q: %w", env, v, err)
		}
	}
	return nil
}
