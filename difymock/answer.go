package difymock

// tokenText is answer chunk i.
func (c *chat) tokenText(i int) string {
	if c.a.kind == appSimple || c.a.kind == appRequired {
		switch i {
		case 0:
			return "You said: "
		case 1:
			return c.query
		}
	}
	if i == 0 {
		return "Mock"
	}
	switch (i - 1) % 7 {
	case 0:
		return " answer"
	case 1:
		return " token"
	case 2:
		return " from"
	case 3:
		return " the"
	case 4:
		return " difymock"
	case 5:
		return " server"
	}
	return "."
}

// answerString writes the full answer (the first c.sent chunks; big-chunk
// filler and invalid bytes are left out) as one JSON string.
func (c *chat) answerString(e *enc) {
	e.b = append(e.b, '"')
	for i := range c.sent {
		e.b = appendEscaped(e.b, c.tokenText(i), e.dumps)
	}
	e.b = append(e.b, '"')
}

func (c *chat) selector(e *enc, i int) {
	switch {
	case (c.a.kind == appSimple || c.a.kind == appRequired) && i == 1:
		e.key("from_variable_selector").arr().elem().str("sys").elem().str("query").endArr()
	case c.a.kind == appComplex:
		e.key("from_variable_selector").arr().elem().str("llm").elem().str("text").endArr()
	default:
		e.knull("from_variable_selector")
	}
}

// answerEvent is the event that carries a chat app's answer chunks.
func (c *chat) answerEvent() string {
	if c.a.agent {
		return "agent_message"
	}
	return "message"
}
