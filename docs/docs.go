// Package docs is gofer's reference, the Markdown pages in this folder that README.md links,
// and reads the tables that tests hold to the code: the settings of settings.md to the flags
// (cmd/gofer) and to the built binary's --help (e2e), and the endpoints of api.md to the
// routes the server registers (server).
package docs

import (
	"embed"
	"fmt"
	"strings"
)

//go:embed *.md
var pages embed.FS

// A Setting is a row of the settings table of settings.md.
type Setting struct {
	Env      string   // the GOFER_* variable
	Flag     string   // the flag, without its dashes
	Default  string   // as --help prints it, or where it comes from: "go env GOPROXY"
	Commands []string // the commands that take it: serve, worker, gc, scrub, warm
}

// GoEnv returns the go command's settings that the default comes from, the first that is set
// ("go env GONOSUMDB, else GOPRIVATE"), or nil for a default that is a value.
func (s Setting) GoEnv() []string {
	names, ok := strings.CutPrefix(s.Default, "go env ")
	if !ok {
		return nil
	}
	return strings.Split(names, ", else ")
}

// Settings reads the settings table of settings.md: its columns are variable, flag, default,
// commands and meaning. A default cell says the default without backquotes and without a remark
// in parentheses at its end: "(none: admin API off)" is the empty default, "`8`" is 8.
func Settings() ([]Setting, error) {
	rows, err := Table("settings.md", "variable", "flag", "default", "commands", "meaning")
	if err != nil {
		return nil, err
	}
	var all []Setting
	for _, r := range rows {
		s := Setting{Env: unquote(r[0]), Flag: strings.TrimLeft(unquote(r[1]), "-"), Default: unquote(withoutRemark(r[2]))}
		for c := range strings.SplitSeq(r[3], ",") {
			s.Commands = append(s.Commands, strings.TrimSpace(c))
		}
		all = append(all, s)
	}
	return all, nil
}

// A Route is a method and a path of the endpoints table of api.md, in gin's syntax
// (/admin/warm/:id, /sumdb/*rest); the method "ANY" is every method gin's Any registers.
type Route struct{ Method, Path string }

// Routes reads the endpoints table of api.md: its columns are method (one, or several
// separated by commas), path and what.
func Routes() ([]Route, error) {
	rows, err := Table("api.md", "method", "path", "what")
	if err != nil {
		return nil, err
	}
	var all []Route
	for _, r := range rows {
		for m := range strings.SplitSeq(r[0], ",") {
			all = append(all, Route{Method: strings.ToUpper(strings.TrimSpace(m)), Path: unquote(r[1])})
		}
	}
	return all, nil
}

// Table returns the rows of every table of the page whose header is columns, each row its
// cells in that order with the spaces around them trimmed ("\|" is a | in a cell). It fails if
// there is no such table, or a row has another number of cells.
func Table(page string, columns ...string) ([][]string, error) {
	b, err := pages.ReadFile(page)
	if err != nil {
		return nil, err
	}
	var rows [][]string
	found, in := false, false
	for i, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "|") {
			in = false
			continue
		}
		cells := split(line)
		switch {
		case in && strings.Trim(line, "|-: ") == "":
			// the line under the header
		case in:
			if len(cells) != len(columns) {
				return nil, fmt.Errorf("%s:%d: %d cells, want %d (%s)", page, i+1, len(cells), len(columns), strings.Join(columns, ", "))
			}
			rows = append(rows, cells)
		case strings.Join(cells, "|") == strings.Join(columns, "|"):
			found, in = true, true
		}
	}
	if !found {
		return nil, fmt.Errorf("%s has no table with the columns %s", page, strings.Join(columns, ", "))
	}
	return rows, nil
}

// split returns the cells of a table row.
func split(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var cell strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cell.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cell.String()))
}

// withoutRemark returns cell without a remark in parentheses at its end.
func withoutRemark(cell string) string {
	cell = strings.TrimSpace(cell)
	if !strings.HasSuffix(cell, ")") {
		return cell
	}
	depth := 0
	for i := len(cell) - 1; i >= 0; i-- {
		switch cell[i] {
		case ')':
			depth++
		case '(':
			if depth--; depth == 0 {
				return strings.TrimSpace(cell[:i])
			}
		}
	}
	return cell
}

// unquote returns cell without its backquotes.
func unquote(cell string) string { return strings.TrimSpace(strings.ReplaceAll(cell, "`", "")) }
