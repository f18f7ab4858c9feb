package tasks

import (
	"github.com/difyload/difyload/workload"
)

// pickState is one user's place in one app's queries. Sequential picks start at an offset
// derived from the worker index and the user id, so users and workers do not replay the
// same sequence; random picks draw from the user's own generator. Picking decodes one row
// of a dataset and nothing else.
type pickState struct {
	next    int
	started bool
}

func (u *User) pick(a action) *pickState {
	st := u.picks[a.target()]
	if st == nil {
		st = &pickState{}
		u.picks[a.target()] = st
	}
	return st
}

// query returns the next query and the row's inputs (nil without a dataset or columns).
// ok is false when the app has no queries (a workflow driven by inputs alone).
func (st *pickState) query(u *User, q *workload.Queries) (query string, inputs map[string]any, ok bool, err error) {
	n := q.Len()
	if n == 0 {
		return "", nil, false, nil
	}
	var i int
	if q.Pick == workload.PickRandom {
		i = u.rng.IntN(n)
	} else {
		if !st.started {
			st.next = int(u.seed % uint64(n))
			st.started = true
		}
		i = st.next
		st.next++
		if st.next >= n {
			st.next = 0
		}
	}
	if q.Dataset == nil {
		return q.Inline[i], nil, true, nil
	}
	query, inputs, err = q.Dataset.Row(i)
	return query, inputs, true, err
}

// mergeInputs returns the app's inputs with a row's columns on top (base itself when the
// row has none: the common case costs no copy).
func mergeInputs(base, row map[string]any) map[string]any {
	if len(row) == 0 {
		if base == nil {
			return map[string]any{} // Dify wants an object, never null
		}
		return base
	}
	out := make(map[string]any, len(base)+len(row))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range row {
		out[k] = v
	}
	return out
}
