// Package jsonscan holds the JSON scanners of the SSE client's hot path: Valid
// (json.Valid's answer in one pass, never allocating; FuzzValidJSON checks the
// agreement), and readers of already validated JSON that find a top-level
// field (Field, Fields), skip values and strings, and decode raw strings and
// numbers without encoding/json (String, Number, Unquote). Each reports
// ok=false outside the plain layout Dify sends, so callers can fall back to
// encoding/json and keep its exact behaviour.
package jsonscan
