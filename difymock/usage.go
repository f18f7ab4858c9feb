package difymock

import (
	"strconv"
	"time"
)

func (c *chat) promptTokens() int64 { return 10 + int64(len(c.query)/4) }

// usage writes the usage object: completion_tokens is the number of answer
// chunks sent; prices are decimal strings; latency, time_to_first_token and
// time_to_generate are float seconds (null when no token was sent).
func (c *chat) usage(e *enc) {
	pt, ct := c.promptTokens(), int64(c.sent)
	now := c.s.clock()
	e.obj().kint("prompt_tokens", pt).kstr("prompt_unit_price", "0.15").kstr("prompt_price_unit", "0.000001").
		kstr("prompt_price", price(pt*15)).kint("completion_tokens", ct).kstr("completion_unit_price", "0.6").
		kstr("completion_price_unit", "0.000001").kstr("completion_price", price(ct*60)).kint("total_tokens", pt+ct).
		kstr("total_price", price(pt*15+ct*60)).kstr("currency", "USD").
		key("latency").float(secs(now.Sub(time.Unix(0, c.rec.Received))))
	if c.firstTok.IsZero() {
		e.knull("time_to_first_token").knull("time_to_generate")
	} else {
		e.key("time_to_first_token").float(secs(c.firstTok.Sub(time.Unix(0, c.rec.Received)))).
			key("time_to_generate").float(secs(c.lastTok.Sub(c.firstTok)))
	}
	e.close()
}

// price formats an amount in units of 1e-8 USD as Dify does (Decimal
// quantized to 7 places, half up).
func price(units int64) string {
	if units == 0 {
		return "0"
	}
	q := (units + 5) / 10
	frac := strconv.FormatInt(q%10_000_000, 10)
	for len(frac) < 7 {
		frac = "0" + frac
	}
	return strconv.FormatInt(q/10_000_000, 10) + "." + frac
}

// secs is d in seconds, rounded to microseconds.
func secs(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / 1e9
}
