package redact

import (
	"slices"
	"strings"
)

// placeholders returns what replaces the texts of each name: its reference
// ${secrets.NAME}, unless that reference could, with the text around it,
// spell one of texts again — a value that is part of its own reference
// ("secrets"), holds one, or starts with "}" or ends with "$" — and then a
// mask of a byte that none of texts holds, which cannot be part of any. It
// returns nil when every byte value occurs in texts.
//
// Why that suffices: the output is the input's unreplaced runs, none of which
// holds a whole text (the scan would have replaced it), with replacements
// between them; a text in the output must therefore overlap a replacement,
// which is what overlaps rules out for a reference and the absent byte for a
// mask.
func placeholders(names, texts []string) map[string]string {
	with := make(map[string]string, len(names))
	mask := ""
	for _, n := range names {
		ref := "${secrets." + n + "}"
		if !slices.ContainsFunc(texts, func(t string) bool { return overlaps(ref, t) }) {
			with[n] = ref
			continue
		}
		if mask == "" {
			if mask = absentMask(texts); mask == "" {
				return nil
			}
		}
		with[n] = mask
	}
	return with
}

// overlaps reports whether t could occur in a text where ref stands, using
// some of ref's bytes: t within ref, ref within t, or t straddling either end
// of ref.
func overlaps(ref, t string) bool {
	if strings.Contains(ref, t) || strings.Contains(t, ref) {
		return true
	}
	for k := 1; k < min(len(ref), len(t)); k++ {
		if strings.HasSuffix(ref, t[:k]) || strings.HasPrefix(ref, t[len(t)-k:]) {
			return true
		}
	}
	return false
}

// absentMask returns "***", or the same made of another byte when a text
// holds a "*"; "" when every byte value occurs in texts.
func absentMask(texts []string) string {
	var seen [256]bool
	for _, t := range texts {
		for i := range len(t) {
			seen[t[i]] = true
		}
	}
	prefer := "*#~^|!?"
	for i := range len(prefer) {
		if !seen[prefer[i]] {
			return strings.Repeat(prefer[i:i+1], 3)
		}
	}
	for c := range 256 {
		if !seen[c] {
			return strings.Repeat(string([]byte{byte(c)}), 3)
		}
	}
	return ""
}
