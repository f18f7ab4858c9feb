package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/difyload/difyload/runner"
)

// parseFlagsAndClasses parses args like parseFlags, but takes the arguments after the
// flags as user class names, as `locust ChatUser` does. Flags may not follow them.
func parseFlagsAndClasses(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	names := fs.Args()
	for _, n := range names {
		if strings.HasPrefix(n, "-") {
			fmt.Fprintf(fs.Output(), "flag %s after the user class names: put flags first\n", n)
			return nil, errUsage
		}
	}
	return names, nil
}

// selectClasses keeps the classes named on the command line (all when none are named)
// and drops the classes whose weight is 0 ("none of this class", as in a locustfile).
// weights, when set, are the class weights given by flags; a negative one is an error.
func selectClasses(classes []runner.UserClass, names []string, weights map[string]int) ([]runner.UserClass, error) {
	byName := make(map[string]runner.UserClass, len(classes))
	known := make([]string, 0, len(classes))
	for _, c := range classes {
		byName[c.Name()] = c
		known = append(known, c.Name())
	}
	sort.Strings(known)
	picked := classes
	if len(names) > 0 {
		picked = nil
		seen := map[string]bool{}
		for _, n := range names {
			c, ok := byName[n]
			if !ok {
				return nil, fmt.Errorf("unknown user class %q (available: %s)", n, strings.Join(known, ", "))
			}
			if !seen[n] {
				seen[n] = true
				picked = append(picked, c)
			}
		}
	}
	var out []runner.UserClass
	for _, c := range picked {
		w, set := weights[c.Name()]
		if set && w < 0 {
			return nil, fmt.Errorf("%s weight %d: want 0 (none) or more", c.Name(), w)
		}
		if set && w == 0 {
			continue
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no user class left to run (every selected class has weight 0)")
	}
	return out, nil
}

// keepNamed keeps the classes named on the command line (all when none are), without
// complaining about names that are absent: for class sets that change at run time (a
// workload the master sends), where a missing name means "none of those here".
func keepNamed(classes []runner.UserClass, names []string) []runner.UserClass {
	if len(names) == 0 {
		return classes
	}
	var out []runner.UserClass
	for _, c := range classes {
		if slices.Contains(names, c.Name()) {
			out = append(out, c)
		}
	}
	return out
}
