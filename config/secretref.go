package config

import (
	"fmt"
	"reflect"
	"strings"
)

// A template is a string that may hold ${secrets.NAME} references; "$${" is a
// literal "${". Any other "${" is an error rather than passed through, so a
// typo such as ${secret.X} or ${secrets.X never reaches a container as text.

// SecretRefs returns the names referenced by s, in order of appearance.
func SecretRefs(s string) ([]string, error) {
	var names []string
	_, err := expand(s, func(name string) (string, error) {
		names = append(names, name)
		return "", nil
	})
	return names, err
}

// Expand replaces every ${secrets.NAME} of s with lookup(NAME) and every
// "$${" with "${".
func Expand(s string, lookup func(name string) (string, error)) (string, error) {
	return expand(s, lookup)
}

func expand(s string, lookup func(string) (string, error)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return "", fmt.Errorf("unclosed \"${\" (write \"$${\" for a literal \"${\")")
		}
		ref := rest[:end]
		name, ok := strings.CutPrefix(ref, "secrets.")
		if !ok || !envNameRE.MatchString(name) || strings.ContainsAny(name, ".-") {
			return "", fmt.Errorf("\"${%s}\" is not a secret reference: use ${secrets.NAME} (NAME of letters, digits and _), or \"$${\" for a literal \"${\"", ref)
		}
		v, err := lookup(name)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		s = rest[end+1:]
	}
}

// ExpandStrings replaces, in place, every string reachable from v (a pointer
// to a struct) with fn(key, s), keys named as EachString names them. The
// secrets resolver expands the references of cluster.toml with it.
func ExpandStrings(v any, fn func(key, s string) (string, error)) error {
	return expandValue(reflect.ValueOf(v), "", fn)
}

func expandValue(v reflect.Value, key string, fn func(key, s string) (string, error)) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return expandValue(v.Elem(), key, fn)
		}
	case reflect.String:
		if !v.CanSet() {
			return nil
		}
		s, err := fn(key, v.String())
		if err != nil {
			return err
		}
		v.SetString(s)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				if err := expandValue(v.Field(i), joinKey(key, strings.ToLower(f.Name)), fn); err != nil {
					return err
				}
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := expandValue(v.Index(i), fmt.Sprintf("%s[%d]", key, i), fn); err != nil {
				return err
			}
		}
	case reflect.Map:
		// Map values are not addressable: expand a copy and store it back.
		for _, k := range v.MapKeys() {
			cp := reflect.New(v.Type().Elem()).Elem()
			cp.Set(v.MapIndex(k))
			if err := expandValue(cp, joinKey(key, k.String()), fn); err != nil {
				return err
			}
			v.SetMapIndex(k, cp)
		}
	}
	return nil
}
