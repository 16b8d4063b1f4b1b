package config

// findCycle returns the first depends_on cycle among services as a path of
// names that ends where it starts ("a", "b", "a"), or nil.
func findCycle(services []*Service, byName map[string]*Service) []string {
	const (
		unvisited = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string) []string
	visit = func(name string) []string {
		state[name] = onStack
		stack = append(stack, name)
		for _, dep := range byName[name].DependsOn {
			if byName[dep] == nil || dep == name {
				continue // reported on their own
			}
			switch state[dep] {
			case onStack:
				for i, n := range stack {
					if n == dep {
						return append(append([]string{}, stack[i:]...), dep)
					}
				}
			case unvisited:
				if c := visit(dep); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
		return nil
	}
	for _, s := range services {
		if byName[s.Name] == s && state[s.Name] == unvisited {
			if c := visit(s.Name); c != nil {
				return c
			}
		}
	}
	return nil
}

// StartOrder groups a project's services into waves: every service of a wave
// depends only on services of earlier waves, so a wave can start concurrently
// once the previous one is ready. The project must be valid (no cycles).
func (p *Project) StartOrder() [][]*Service {
	placed := map[string]bool{}
	var waves [][]*Service
	for len(placed) < len(p.Services) {
		var wave []*Service
		for _, s := range p.Services {
			if placed[s.Name] {
				continue
			}
			ready := true
			for _, d := range s.DependsOn {
				if !placed[d] && p.Service(d) != nil {
					ready = false
				}
			}
			if ready {
				wave = append(wave, s)
			}
		}
		if len(wave) == 0 {
			return append(waves, p.remaining(placed))
		}
		for _, s := range wave {
			placed[s.Name] = true
		}
		waves = append(waves, wave)
	}
	return waves
}

// remaining returns the services not yet placed (only reached on a cycle,
// which validation rejects).
func (p *Project) remaining(placed map[string]bool) []*Service {
	var rest []*Service
	for _, s := range p.Services {
		if !placed[s.Name] {
			rest = append(rest, s)
		}
	}
	return rest
}
