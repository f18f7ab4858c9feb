//go:build race

package difymock

const raceEnabled = true
