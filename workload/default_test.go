package workload

import (
	"testing"
	"time"

	"github.com/difyload/difyload/sse"
)

func TestDefaultIsTheSeed(t *testing.T) {
	t.Parallel()
	w := Default()
	if len(w.Apps) != 2 || len(w.KnowledgeBases) != 1 || len(w.Users) != 2 {
		t.Fatalf("default %+v", w)
	}
	s, c, k := w.Apps[0], w.Apps[1], w.KnowledgeBases[0]
	if s.Name != "SimpleChatFlow" || s.Type != sse.ModeChatflow || s.Queries.Inline[0] != "请简单介绍一下你自己" || len(s.Inputs) != 0 || s.Timeout != 0 {
		t.Errorf("simple %+v", s)
	}
	if c.Name != "ComplexChatFlow" || c.Queries.Inline[0] != "我需要申请一台新电脑,请指导我完成流程" || c.Inputs["dept"] != "IT" || c.Timeout != 120*time.Second {
		t.Errorf("complex %+v", c)
	}
	rm := k.RetrievalModel
	if k.Queries.Inline[0] != "流程审批是什么?如果有图片,请一起返回" || rm["search_method"] != "hybrid_search" || rm["reranking_enable"] != false ||
		rm["score_threshold_enabled"] != false || k.Timeout != 30*time.Second || k.Key.Option != "dify_dataset_key" || k.DatasetID.Option != "dify_dataset_id" {
		t.Errorf("retrieval %+v", k)
	}
	cu, ru := w.Users[0], w.Users[1]
	if cu.Name != "ChatUser" || cu.Wait != (Wait{Kind: WaitBetween, Min: time.Second, Max: 3 * time.Second}) || len(cu.Tasks) != 2 || cu.Tasks[0].Name != "simple_chat_flow" || cu.Weight != 1 {
		t.Errorf("ChatUser %+v", cu)
	}
	if ru.Name != "RetrieveUser" || ru.Wait != (Wait{Kind: WaitBetween, Min: 2 * time.Second, Max: 5 * time.Second}) || ru.Tasks[0].Target != "FileRetrieval" {
		t.Errorf("RetrieveUser %+v", ru)
	}
}
