#!/usr/bin/python3
"""peer_server.py: the recommendation server a team would write instead of driftrec-server.

Python grpcio + PyTorch, serving driftrec.v1.Recommender's Recommend and Rank (the same proto)
from a driftrec bundle:

* the user vector: driftrec_train.interest.InterestModel.forward_user in PyTorch fp32, the
  weights read from the bundle's interest model (export.read_model: int8 weights come back
  dequantised), or with --int8 after torch dynamic int8 quantisation of the Linear and LSTM
  layers; one torch thread (torch.set_num_threads(1)); BLAS as the distribution ships it.
* the work rule, the same as driftrec-server's under driftrec-load's replay: each call
  rebuilds the user's state from the request's inline events (the last 50 of the user) --
  no stored history, no cache.  Unknown items are left out, dwell_s and amount clipped at
  the bundle's preprocessing.clip, no event text; the last max_events usable events count.
* the top k: hnswlib (M 16, ef_construction 200, ef = the bundle's index.ef_search) over the
  bundle's item vectors when the hnswlib Python module is installed; otherwise exact numpy
  dot products (said on stderr and in the "serving" line).  Candidates are re-scored exactly
  and the request's event items excluded (EXCLUDE_HISTORY), like the server.
* query_text: not served (FAILED_PRECONDITION); Rank scores the known candidates exactly.

Prints one JSON line {"msg":"serving",...} on stderr once it accepts calls.
"""
import argparse
import json
import os
import sys
import time
from concurrent import futures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "models", "train"))

import driftrec_train.runtime  # noqa: E402,F401  (BLAS set-up before numpy and torch)
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from driftrec_train import bundle as bundle_mod, export, interest  # noqa: E402


class Peer:
    def __init__(self, bundle_dir, int8=False, use_hnsw=True):
        self.manifest, self.ids, self.vectors = bundle_mod.read_bundle(bundle_dir)
        self.row = {i: r for r, i in enumerate(self.ids)}
        self.types = self.manifest["preprocessing"]["event_types"]
        self.clip = self.manifest["preprocessing"].get("clip", {})
        mm, tensors = export.read_model(os.path.join(bundle_dir, self.manifest["interest"]))
        config = interest.InterestConfig.from_dict(mm["config"])
        model = interest.InterestModel(config)
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
        model.eval()
        if int8:
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear, torch.nn.LSTM}, dtype=torch.qint8)
        self.model, self.max_events = model, config.max_events
        self.ef = int(self.manifest.get("index", {}).get("ef_search", 64))
        self.index = None
        if use_hnsw:
            try:
                import hnswlib
                self.index = hnswlib.Index(space="ip", dim=self.vectors.shape[1])
                self.index.init_index(max_elements=len(self.ids), M=16, ef_construction=200)
                self.index.add_items(self.vectors, np.arange(len(self.ids)), num_threads=1)
                self.index.set_ef(self.ef)
                self.index.set_num_threads(1)
            except ImportError:
                print("peer: the hnswlib Python module is not installed: exact numpy top-k",
                      file=sys.stderr)
        self.topk = "hnswlib" if self.index is not None else "numpy-exact"

    def user_vector(self, events):
        usable = [e for e in sorted(events, key=lambda e: e.ts)
                  if e.item_id in self.row and 1 <= e.event_type <= len(self.types)]
        usable = usable[-self.max_events:]

        def opt(e, name, clip=None):
            if not e.HasField(name):
                return None
            v = float(getattr(e, name))
            return min(v, clip) if clip is not None else v
        d = self.vectors.shape[1]
        ue = interest.UserEvents(
            item_vecs=(self.vectors[[self.row[e.item_id] for e in usable]] if usable
                       else np.zeros((0, d), np.float32)),
            text_vecs=None,
            event_types=[e.event_type - 1 for e in usable],  # proto numbers start at 1
            ts=[e.ts for e in usable],
            dwell_s=[opt(e, "dwell_s", self.clip.get("dwell_s")) for e in usable],
            amount=[opt(e, "amount", self.clip.get("amount")) for e in usable],
            rating=[opt(e, "rating") for e in usable])
        with torch.no_grad():
            return self.model.forward_user(ue).numpy().astype(np.float32)

    def top(self, u, k, excluded):
        if self.index is not None:
            n = min(len(self.ids), max(k + len(excluded), self.ef))
            labels, _ = self.index.knn_query(u[None], k=n)
            rows = np.array([r for r in labels[0] if r not in excluded], dtype=np.int64)
        else:
            rows = np.array([r for r in range(len(self.ids)) if r not in excluded]
                            if excluded else np.arange(len(self.ids)), dtype=np.int64)
        scores = self.vectors[rows] @ u
        take = min(k, len(rows))
        best = np.argpartition(-scores, take - 1)[:take] if take < len(rows) else np.arange(take)
        best = sorted(best, key=lambda i: (-scores[i], rows[i]))
        return [(int(rows[i]), float(scores[i])) for i in best]


def serve(args):
    sys.path.insert(0, args.proto_py)
    import driftrec_pb2 as pb
    peer = Peer(args.model, int8=args.int8, use_hnsw=not args.no_hnsw)

    def recommend(req, ctx):
        if req.query_text:
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "the peer serves no query text")
        k = req.k or 10
        if not 1 <= k <= 1000:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "k: 1..1000")
        u = peer.user_vector(req.recent_events)
        excluded = {peer.row[e.item_id] for e in req.recent_events if e.item_id in peer.row}
        out = pb.RecommendResponse(model=peer.manifest["name"],
                                   model_version=peer.manifest["version"])
        for r, s in peer.top(u, k, excluded):
            out.items.add(item_id=peer.ids[r], score=s)
        return out

    def rank(req, ctx):
        if not req.candidate_item_ids:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "candidate_item_ids: 1..5000")
        u = peer.user_vector(req.recent_events)
        out = pb.RankResponse(model=peer.manifest["name"], model_version=peer.manifest["version"])
        rows = []
        for c in dict.fromkeys(req.candidate_item_ids):
            if c in peer.row:
                rows.append(peer.row[c])
            else:
                out.unknown_item_ids.append(c)
        scores = peer.vectors[rows] @ u if rows else np.zeros(0)
        for i in sorted(range(len(rows)), key=lambda i: (-scores[i], rows[i])):
            out.items.add(item_id=peer.ids[rows[i]], score=float(scores[i]))
        return out

    handlers = {
        "Recommend": grpc.unary_unary_rpc_method_handler(
            recommend, request_deserializer=pb.RecommendRequest.FromString,
            response_serializer=pb.RecommendResponse.SerializeToString),
        "Rank": grpc.unary_unary_rpc_method_handler(
            rank, request_deserializer=pb.RankRequest.FromString,
            response_serializer=pb.RankResponse.SerializeToString),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("driftrec.v1.Recommender", handlers),))
    server.add_insecure_port(args.listen)
    server.start()
    print(json.dumps({"msg": "serving", "listen": args.listen, "model": peer.manifest["name"],
                      "interest": "int8-dynamic" if args.int8 else "fp32", "topk": peer.topk,
                      "torch_threads": torch.get_num_threads()}), file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:50061", help="HOST:PORT")
    ap.add_argument("--model", required=True, help="the bundle directory")
    ap.add_argument("--int8", action="store_true",
                    help="torch dynamic int8 quantisation of the interest model")
    ap.add_argument("--no-hnsw", action="store_true", help="exact numpy top-k even with hnswlib")
    ap.add_argument("--workers", type=int, default=4, help="gRPC handler threads (default 4)")
    ap.add_argument("--proto-py", default=os.path.join(REPO, "build", "proto_gen", "python"),
                    help="the generated driftrec_pb2 (default build/proto_gen/python)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    serve(args)


if __name__ == "__main__":
    main()
