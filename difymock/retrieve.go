package difymock

import (
	"crypto/sha1"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// serveRetrieve answers POST /v1/datasets/{id}/retrieve (docs/dify-wire.md, "Knowledge retrieval").
func (s *Server) serveRetrieve(rq *req, datasetID string) {
	key := rq.auth()
	if key == "" {
		return
	}
	if key != DatasetKey {
		rq.invalidToken()
		return
	}
	rq.rec.App = "dataset"
	if !s.sets[strings.ToLower(datasetID)] {
		rq.fail(http.StatusNotFound, "not_found", "Dataset not found.")
		return
	}
	if !rq.requireJSON() {
		return
	}
	var body struct {
		Query          *string  `json:"query"`
		AttachmentIDs  []string `json:"attachment_ids"`
		RetrievalModel *struct {
			SearchMethod          string   `json:"search_method"`
			RerankingEnable       *bool    `json:"reranking_enable"`
			TopK                  *int     `json:"top_k"`
			ScoreThresholdEnabled *bool    `json:"score_threshold_enabled"`
			ScoreThreshold        *float64 `json:"score_threshold"`
		} `json:"retrieval_model"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		rq.fail(http.StatusBadRequest, "bad_request", "The browser (or proxy) sent a request that this server could not understand.")
		return
	}
	if !rq.overrides(true) {
		return
	}
	query := ""
	if body.Query != nil {
		query = *body.Query
	}
	if query == "" && len(body.AttachmentIDs) == 0 {
		rq.fail(http.StatusBadRequest, "invalid_param", "Query or attachment_ids is required")
		return
	}
	if utf8.RuneCountInString(query) > 250 {
		rq.fail(http.StatusBadRequest, "invalid_param", "Query cannot exceed 250 characters")
		return
	}
	topK, threshold := 4, -1.0
	if m := body.RetrievalModel; m != nil {
		switch m.SearchMethod {
		case "keyword_search", "semantic_search", "full_text_search", "hybrid_search":
		default:
			rq.fail(http.StatusBadRequest, "invalid_param", "Retrieval method is required")
			return
		}
		if m.RerankingEnable == nil || m.TopK == nil || m.ScoreThresholdEnabled == nil {
			rq.fail(http.StatusBadRequest, "invalid_param", "retrieval_model: search_method, reranking_enable, top_k and score_threshold_enabled are required")
			return
		}
		topK = *m.TopK
		if *m.ScoreThresholdEnabled && m.ScoreThreshold != nil {
			threshold = *m.ScoreThreshold
		}
	}
	topK = min(max(topK, 0), 10)
	if rq.httpFault(datasetID) {
		return
	}
	wait := rq.jitter(rq.set.retrieval)
	if rq.fault == fStall {
		wait += rq.set.stall
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-rq.r.Context().Done():
			t.Stop()
			if rq.fault == fStall {
				rq.out = faultOutcome(fStall)
			} else {
				rq.out = oClientGone
			}
			return
		case <-t.C:
		}
	}
	if rq.fault == fReset {
		resetConn(rq.w)
		rq.out = faultOutcome(fReset)
		return
	}
	e := enc{b: make([]byte, 0, 1024+topK*900)}
	e.open().key("query").obj().kstr("content", query).close().key("records").arr()
	created := int64(1741267200)
	for k := range topK {
		score := float64(92-7*k) / 100
		if score < threshold {
			break
		}
		seg := hashUUID(datasetID, "segment", k)
		doc := hashUUID(datasetID, "document", k%3)
		content := "Mock segment " + strconv.Itoa(k+1) + " of the difymock knowledge base. Dify is an open-source LLM app platform."
		e.elem().obj().key("segment").obj().kstr("id", seg).kint("position", int64(k+1)).kstr("document_id", doc).
			kstr("content", content).kstr("sign_content", "").kstr("answer", "").kint("word_count", int64(len(content))).
			kint("tokens", int64(len(content)/4)).key("keywords").arr().elem().str("dify").elem().str("mock").endArr().
			kstr("index_node_id", hashUUID(datasetID, "node", k)).kstr("index_node_hash", seg[:8]+seg[9:13]+seg[14:18]+seg[19:23]+seg[24:]).
			kint("hit_count", 1).kbool("enabled", true).knull("disabled_at").knull("disabled_by").kstr("status", "completed").
			kstr("created_by", "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c").kint("created_at", created).kint("indexing_at", created).
			kint("completed_at", created).knull("error").knull("stopped_at").
			key("document").obj().kstr("id", doc).kstr("data_source_type", "upload_file").kstr("name", "guide-"+strconv.Itoa(k%3+1)+".txt").
			knull("doc_type").knull("doc_metadata").close().close().
			key("child_chunks").emptyArr().key("score").float(score).knull("tsne_position").key("files").emptyArr().knull("summary").close()
	}
	e.endArr().close()
	e.b = append(e.b, '\n')
	if err := writeJSON(rq.w, http.StatusOK, "application/json", e.b); err != nil {
		rq.out = oClientGone
		return
	}
	rq.rec.Terminal = s.clock().UnixNano()
	if rq.fault == fStall {
		rq.out = faultOutcome(fStall)
	}
}

// hashUUID is a stable UUID for (a, b, n).
func hashUUID(a, b string, n int) string {
	sum := sha1.Sum([]byte(a + "\x00" + b + "\x00" + strconv.Itoa(n)))
	var u [16]byte
	copy(u[:], sum[:16])
	return formatUUID(u, 5)
}
