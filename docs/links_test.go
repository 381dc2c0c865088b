package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every relative link of README.md and of these pages names a file that exists and, with a
// #fragment, a heading of that file.
func TestRelativeLinks(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join("..", "README.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, page := range pages {
		for _, m := range link.FindAllStringSubmatch(prose(t, page), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, fragment, _ := strings.Cut(target, "#")
			file = filepath.Join(filepath.Dir(page), file)
			if m[1][0] == '#' {
				file = page
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("%s links %s: %v", page, target, err)
				continue
			}
			if fragment != "" && strings.HasSuffix(file, ".md") && !hasHeading(t, file, fragment) {
				t.Errorf("%s links %s: %s has no heading #%s", page, target, file, fragment)
			}
		}
	}
}

// prose returns the Markdown file name without its fenced code blocks.
func prose(t *testing.T, name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fenced := false
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		} else if !fenced {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// hasHeading reports whether the Markdown file name has a heading whose anchor is fragment, as
// GitHub makes anchors: lower case, spaces as hyphens, other punctuation dropped.
func hasHeading(t *testing.T, name, fragment string) bool {
	for line := range strings.Lines(prose(t, name)) {
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		var anchor strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(title)) {
			switch {
			case r == ' ':
				anchor.WriteRune('-')
			case r == '-' || r == '_' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
				anchor.WriteRune(r)
			}
		}
		if anchor.String() == fragment {
			return true
		}
	}
	return false
}
