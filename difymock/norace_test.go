//go:build !race

package difymock

const raceEnabled = false
