package config

import "strings"

// lineIndex finds the line of a key in a TOML file's text. The TOML library
// reports no positions for keys of array tables (every [[service]] shares one
// key path), so errors are placed by a light scan of the source instead: the
// n-th [[table]] header opens the n-th element's block, and a key is looked up
// inside that block, following sub-table headers for dotted keys.
type lineIndex struct {
	lines []string
	// blocks maps an array table name ("service", "notify", "backup.targets") to the 0-based line
	// of each of its headers, in order.
	blocks map[string][]int
}

func newLineIndex(src string) *lineIndex {
	li := &lineIndex{lines: strings.Split(src, "\n"), blocks: map[string][]int{}}
	for i, l := range li.lines {
		l = strings.TrimSpace(l)
		if name, ok := header(l); ok && strings.HasPrefix(l, "[[") {
			li.blocks[name] = append(li.blocks[name], i)
		}
	}
	return li
}

// header returns the table name of a `[name]` or `[[name]]` line.
func header(line string) (string, bool) {
	if !strings.HasPrefix(line, "[") {
		return "", false
	}
	if i := strings.Index(line, "#"); i > 0 {
		line = strings.TrimSpace(line[:i])
	}
	name := strings.Trim(line, "[] \t")
	return strings.ReplaceAll(name, " ", ""), true
}

// keyName returns the key of a `key = value` line.
func keyName(line string) string {
	k, _, ok := strings.Cut(line, "=")
	if !ok {
		return ""
	}
	return strings.Trim(strings.TrimSpace(k), `"'`)
}

// blockStart returns the 1-based header line of element index of an array table.
func (li *lineIndex) blockStart(table string, index int) int {
	b := li.blocks[table]
	if index < 0 || index >= len(b) {
		return 0
	}
	return b[index] + 1
}

// findText returns the 1-based line of the first line of element index of
// table that holds needle as a quoted string, or 0.
func (li *lineIndex) findText(table string, index int, needle string) int {
	b := li.blocks[table]
	if needle == "" || index < 0 || index >= len(b) {
		return 0
	}
	end := len(li.lines)
	if index+1 < len(b) {
		end = b[index+1]
	}
	for i := b[index]; i < end; i++ {
		if strings.Contains(li.lines[i], `"`+needle+`"`) || strings.Contains(li.lines[i], "'"+needle+"'") {
			return i + 1
		}
	}
	return 0
}

// find returns the 1-based line of key (dotted, e.g. "deploy.strategy") inside
// element index of table ("" and -1 for the file's top level), or 0.
func (li *lineIndex) find(table string, index int, key string) int {
	start, end, prefix := 0, len(li.lines), ""
	if table != "" {
		b := li.blocks[table]
		if index < 0 || index >= len(b) {
			return 0
		}
		start, prefix = b[index]+1, table+"."
		if index+1 < len(b) {
			end = b[index+1]
		}
	}
	if key == "" {
		return 0
	}
	found := 0
	for _, part := range strings.Split(key, ".") {
		line, isTable := li.findPart(start, end, prefix, part)
		if line == 0 {
			return found
		}
		found = max(line, found)
		if !isTable {
			return found
		}
		start, prefix = line, prefix+part+"."
	}
	return found
}

// findPart looks for part either as `part = ...` in the current table (before
// any other header) or as a `[prefix+part]` header.
func (li *lineIndex) findPart(start, end int, prefix, part string) (line int, isTable bool) {
	here := true
	for i := start; i < end && i < len(li.lines); i++ {
		l := strings.TrimSpace(li.lines[i])
		if name, ok := header(l); ok {
			if name == prefix+part {
				return i + 1, true
			}
			if strings.HasPrefix(name, prefix+part+".") {
				// A deeper table such as [service.deploy.analysis] implies
				// this one: rescan from its header for the next part.
				return i, true
			}
			here = false
			continue
		}
		if here && keyName(l) == part {
			return i + 1, false
		}
	}
	return 0, false
}
