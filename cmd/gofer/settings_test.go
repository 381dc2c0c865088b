package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/goferproxy/gofer/docs"
)

// docs/settings.md lists every setting of every command, once, with its flag, variable,
// default and commands as the code defines them, and no setting that no command has.
func TestSettingsTableIsTheFlags(t *testing.T) {
	defined, err := listSettings()
	if err != nil {
		t.Fatal(err)
	}
	if len(defined) == 0 {
		t.Fatal("listSettings found no settings")
	}
	type key struct{ env, flag string }
	var order []key
	code := map[key]*docs.Setting{}
	for _, s := range defined {
		k := key{s.env, s.flag}
		c := code[k]
		if c == nil {
			c = &docs.Setting{Env: s.env, Flag: s.flag, Default: s.def}
			code[k] = c
			order = append(order, k)
		} else if c.Default != s.def {
			t.Errorf("%s (-%s) has the default %q in gofer %s and %q in gofer %s: give them rows of their own",
				s.env, s.flag, c.Default, strings.Join(c.Commands, ", "), s.def, s.cmd)
		}
		c.Commands = append(c.Commands, s.cmd)
	}

	rows, err := docs.Settings()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[key]bool{}
	for _, r := range rows {
		k := key{r.Env, r.Flag}
		c := code[k]
		switch {
		case listed[k]:
			t.Errorf("docs/settings.md lists %s (--%s) twice", r.Env, r.Flag)
		case c == nil:
			t.Errorf("docs/settings.md lists %s (--%s), which no command has", r.Env, r.Flag)
		default:
			if r.Default != c.Default {
				t.Errorf("docs/settings.md: %s (--%s) defaults to %q, but the code says %q", r.Env, r.Flag, r.Default, c.Default)
			}
			if !slices.Equal(slices.Sorted(slices.Values(r.Commands)), slices.Sorted(slices.Values(c.Commands))) {
				t.Errorf("docs/settings.md: %s (--%s) is a setting of %s, but the code has it in %s",
					r.Env, r.Flag, strings.Join(r.Commands, ", "), strings.Join(c.Commands, ", "))
			}
		}
		listed[k] = true
	}
	for _, k := range order {
		if c := code[k]; !listed[k] {
			t.Errorf("docs/settings.md misses %s (--%s; default %q; %s)", c.Env, c.Flag, c.Default, strings.Join(c.Commands, ", "))
		}
	}
}
