# The two commands a new user runs: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LEAN ?= .venv-lean

.PHONY: install install-dev demo test lint test-fast test-integration lean-check bench evaluate evaluate-sift evaluate-modes \
	design-experiments evaluate-quality evaluate-distilled evaluate-label-issues \
	evaluate-runtimes screenshot clean

# The default (lean) install: search, ingest and evaluate, the trained
# encoders run by ONNX Runtime; no TensorFlow.
$(VENV)/.lean: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# Everything: the training extra (TensorFlow, Keras, the ONNX exporter), the map, scale and labels extras and the test tools.
$(VENV)/.dev: $(VENV)/.lean
	$(BIN)/pip install -q -e '.[train,map,scale,labels,test]'
	touch $@

install: $(VENV)/.lean

install-dev: $(VENV)/.dev

## Set up, get FMNIST, ingest the 60,000-image gallery with every available
## method but the ensemble (the distilled method comes within half a point of it at one network's cost;
## `fmsearch ingest --method ensemble` adds it) into the embedded store, query each collection, the
## distilled one first.
demo: install
	$(BIN)/fmsearch data
	$(BIN)/fmsearch ingest --method all
	$(BIN)/fmsearch collections
	@for m in distilled pixels autoencoder siamese proxy resnet101; do \
	  if $(BIN)/fmsearch collections --json | grep -q "\"fmnist_$$m\""; then \
	    echo "== $$m: test image 0 (an Ankle boot), its 5 nearest train images"; \
	    $(BIN)/fmsearch query --id 60000 --method $$m -k 5 || exit 1; \
	  else echo "== $$m: not ingested (see the ingest output above)"; fi; \
	done
	$(BIN)/fmsearch query --id 60000 --method distilled -k 5 --class Sneaker
	$(BIN)/fmsearch query --id 60000 --method pixels -k 5 --rerank sift
	$(BIN)/fmsearch compare 60000 60001 --out matches.png

## Set up, check formatting, lint and types (make lint), and run the test suite (integration tests skip,
## with the reason, without a server).
test: lint
	$(BIN)/python -m pytest -q

## Formatting, lint and types: ruff format and ruff check (configured in pyproject.toml), mypy on the library.
lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python tests/typecheck.py

## The quick loop while changing code: everything but the multi-second tests
## (marked slow) and the server tests. `make test` runs them all.
test-fast: install-dev
	$(BIN)/python -m pytest -q -m "not slow and not integration"

## README's screenshot of the page (docs/img/page.png): a real `fmsearch serve` on
## the demo's home, Debian's Chromium driven by Playwright (apt-get install chromium).
screenshot: install-dev
	$(BIN)/python tests/screenshot.py --home $${FMSEARCH_HOME:-.fmsearch} --out docs/img/page.png

## Only the tests against a real Qdrant server (Docker engine or QDRANT_URL).
test-integration: install-dev
	$(BIN)/python -m pytest -q -m integration

## The lean install on its own, as a user gets it from `pip install .`: no
## TensorFlow, yet a Siamese ingest and query work, and the commands that need
## the training extra say so in one line.
lean-check:
	rm -rf $(LEAN) && $(PY) -m venv $(LEAN)
	$(LEAN)/bin/pip install -q --upgrade pip
	$(LEAN)/bin/pip install -q .
	$(LEAN)/bin/python tests/lean_check.py

## Every benchmark suite but scale (docs/benchmarks.md): tens of minutes on 2 cores.
bench: install-dev
	$(BIN)/fmsearch bench all

## Full test-split evaluation of every ingested method (README's results table).
evaluate: install
	$(BIN)/fmsearch evaluate --method pixels --queries all --exact
	@for m in pixels autoencoder siamese proxy resnet101; do \
	  if $(BIN)/fmsearch collections --json | grep -q "\"fmnist_$$m\""; then \
	    $(BIN)/fmsearch evaluate --method $$m --queries all || exit 1; fi; \
	done
	$(BIN)/fmsearch results eval-results/*/metrics.json

## Retrieval quality (docs/methods.md, "Design experiments"): each run trained on train images
## 0-49,999 and measured on 50,000-59,999 (never the test split), 6 epochs each; then the
## validation figures of the seed-recipe siamese and the proxy, mirror-averaged, expanded, together
## (two, three and four networks concatenated; the three with test-time shifts).
design-experiments: install-dev
	$(BIN)/fmsearch train --method proxy --augment flip-shift-erase --epochs 6 --validation 10000 --no-eval --out design/proxy-erase
	$(BIN)/fmsearch train --method proxy --augment flip-shift --epochs 6 --validation 10000 --no-eval --out design/proxy-flipshift
	$(BIN)/fmsearch train --method siamese --mining semi-hard --epochs 6 --validation 10000 --no-eval --out design/siamese-seed
	$(BIN)/fmsearch train --method proxy --loss cosface+triplet --augment flip-shift --epochs 6 --validation 10000 --no-eval \
	  --out design/proxy-triplet
	$(BIN)/fmsearch validate design/siamese-seed/siamese.keras design/proxy-flipshift/proxy.keras --mirror --expand 0,3
	$(BIN)/fmsearch validate design/siamese-seed/siamese.keras design/proxy-flipshift/proxy.keras \
	  design/proxy-erase/proxy.keras --mirror --expand 0,3
	$(BIN)/fmsearch validate design/siamese-seed/siamese.keras design/proxy-flipshift/proxy.keras \
	  design/proxy-erase/proxy.keras --mirror --shifts 1
	$(BIN)/fmsearch validate design/siamese-seed/siamese.keras design/proxy-flipshift/proxy.keras \
	  design/proxy-erase/proxy.keras design/proxy-triplet/proxy.keras --mirror
	# the distilled method's students (the shipped ensemble's vectors of the train images and two shifted
	# copies of each, computed once and cached: 26 min here; the runs with fewer views read the same cache)
	$(BIN)/fmsearch train --method distilled --loss cosine+cosface --views 2 --epochs 6 --validation 10000 --no-eval \
	  --out design/distilled-cosface
	$(BIN)/fmsearch train --method distilled --loss cosine --views 2 --epochs 6 --validation 10000 --no-eval \
	  --out design/distilled-cosine
	$(BIN)/fmsearch train --method distilled --loss relational+cosface --views 2 --epochs 6 --validation 10000 --no-eval \
	  --out design/distilled-relational
	$(BIN)/fmsearch train --method distilled --loss cosine --views 0 --epochs 6 --validation 10000 --no-eval \
	  --out design/distilled-cosine-views0
	$(BIN)/fmsearch train --method distilled --loss relational+cosface --views 0 --epochs 6 --validation 10000 \
	  --no-eval --out design/distilled-relational-views0

## The shipped siamese, proxy and ensemble on the full test split: plain, with query expansion,
## fused, the per-class table with Shirt, the modes benchmark of their modes and why no
## quantisation is offered for proxy or the ensemble
## (docs/evaluation.md, "Retrieval quality: siamese, proxy and ensemble").
evaluate-quality: install
	$(BIN)/fmsearch ingest --method siamese
	$(BIN)/fmsearch ingest --method proxy
	$(BIN)/fmsearch ingest --method ensemble
	@for m in siamese proxy siamese+proxy ensemble; do for n in 0 3; do \
	  $(BIN)/fmsearch evaluate --method $$m --queries all --expand $$n || exit 1; done; done
	$(BIN)/fmsearch results --digits 4 eval-results/siamese/metrics.json eval-results/siamese-qe*/metrics.json \
	  eval-results/proxy/metrics.json eval-results/proxy-qe*/metrics.json eval-results/siamese+proxy-*/metrics.json \
	  eval-results/ensemble/metrics.json eval-results/ensemble-qe*/metrics.json
	$(BIN)/fmsearch results --per-class eval-results/siamese/metrics.json eval-results/proxy/metrics.json \
	  eval-results/siamese+proxy-rrf/metrics.json eval-results/ensemble/metrics.json eval-results/ensemble-qe3/metrics.json
	$(BIN)/fmsearch bench modes --methods siamese,proxy,ensemble --queries 500
	$(BIN)/fmsearch bench quantization --methods proxy,ensemble --queries 1000

## The distilled method beside proxy and the ensemble it learned from (docs/evaluation.md, "The distilled
## method"): each ingested and evaluated on all 10,000 test queries in one run, without and with query
## expansion; then which quantisations keep its neighbour order.
evaluate-distilled: install
	@for m in proxy distilled ensemble; do $(BIN)/fmsearch ingest --method $$m || exit 1; done
	@for m in proxy distilled ensemble; do for n in 0 3; do \
	  $(BIN)/fmsearch evaluate --method $$m --queries all --expand $$n || exit 1; done; done
	$(BIN)/fmsearch results --digits 4 eval-results/proxy/metrics.json eval-results/proxy-qe3/metrics.json \
	  eval-results/distilled/metrics.json eval-results/distilled-qe3/metrics.json \
	  eval-results/ensemble/metrics.json eval-results/ensemble-qe3/metrics.json
	$(BIN)/fmsearch results --per-class eval-results/proxy/metrics.json eval-results/distilled/metrics.json \
	  eval-results/ensemble/metrics.json
	$(BIN)/fmsearch bench quantization --methods distilled --queries 1000

## Likely label errors measured against cleanlab (docs/insight.md, "Likely label errors"): 2% of the labels
## flipped (seed 3; uniformly, then to the most confusable class) in a copy, the label-free methods on the
## train split and the distilled method on the test split against the train gallery, cleanlab's Datalab on
## the same vectors and labels in each run; then the real labels' suspects, test split and train split.
evaluate-label-issues: install-dev
	@for m in autoencoder pixels; do $(BIN)/fmsearch ingest --method $$m || exit 1; done
	$(BIN)/fmsearch ingest --method distilled --split all
	@for mode in uniform confusable; do \
	  for m in autoencoder pixels; do $(BIN)/fmsearch label-issues --method $$m --split train \
	    --inject-noise 0.02 --noise $$mode --seed 3 || exit 1; done; \
	  $(BIN)/fmsearch label-issues --method distilled --split test --inject-noise 0.02 --noise $$mode --seed 3 \
	    || exit 1; done
	$(BIN)/fmsearch label-issues --method distilled --split test
	$(BIN)/fmsearch label-issues --method autoencoder --split train

## The two runtimes give the same figures (docs/evaluation.md, "Runtimes"): each
## trained method ingested and evaluated on the full test split once with
## TensorFlow and once with ONNX Runtime, in homes of their own.
## Exact search shows the runtimes' own difference; HNSW adds its index build's.
evaluate-runtimes: install-dev
	@for rt in tensorflow onnx; do for m in autoencoder siamese; do \
	  $(BIN)/fmsearch --home .fmsearch-$$rt ingest --method $$m --runtime $$rt --recreate || exit 1; \
	  $(BIN)/fmsearch --home .fmsearch-$$rt evaluate --method $$m --queries all --runtime $$rt \
	    --out eval-results/runtime-$$rt-$$m || exit 1; \
	  $(BIN)/fmsearch --home .fmsearch-$$rt evaluate --method $$m --queries all --runtime $$rt --exact \
	    --out eval-results/runtime-$$rt-$$m-exact || exit 1; done; done
	$(BIN)/fmsearch results --digits 4 eval-results/runtime-*/metrics.json

## Search modes (docs/search-modes.md): quantised collections, every mode on the
## full test split, the quantisation and modes benchmarks, then the table.
evaluate-modes: install
	$(BIN)/fmsearch ingest --method pixels --quantization int8
	$(BIN)/fmsearch ingest --method autoencoder --quantization int8
	$(BIN)/fmsearch ingest --method autoencoder --quantization binary
	$(BIN)/fmsearch bench quantization --queries 1000
	@for m in pixels autoencoder siamese; do \
	  $(BIN)/fmsearch evaluate --method $$m --queries all || exit 1; done
	@for m in pixels autoencoder; do \
	  $(BIN)/fmsearch evaluate --method $$m --queries all --quantization int8 || exit 1; \
	  $(BIN)/fmsearch evaluate --method $$m --queries all --quantization int8 --oversampling 1 || exit 1; \
	  $(BIN)/fmsearch evaluate --method $$m --queries all --quantization int8 --no-rescore || exit 1; done
	$(BIN)/fmsearch evaluate --method autoencoder --queries all --quantization binary
	$(BIN)/fmsearch evaluate --method autoencoder --queries all --quantization binary --oversampling 4
	$(BIN)/fmsearch evaluate --method autoencoder --queries all --quantization binary --no-rescore
	$(BIN)/fmsearch evaluate --method pixels --queries all --rescore-with siamese
	$(BIN)/fmsearch evaluate --method autoencoder --queries all --rescore-with siamese
	$(BIN)/fmsearch evaluate --method autoencoder+siamese --queries all
	$(BIN)/fmsearch evaluate --method autoencoder+siamese --queries all --fusion-weights 1,2
	$(BIN)/fmsearch evaluate --method autoencoder+siamese --queries all --fusion dbsf
	$(BIN)/fmsearch evaluate --method pixels+autoencoder+siamese --queries all
	$(BIN)/fmsearch bench modes
	$(BIN)/fmsearch results --modes --bench bench-results/modes.json \
	  eval-results/pixels/metrics.json eval-results/autoencoder/metrics.json eval-results/siamese/metrics.json \
	  eval-results/*-int8-*/metrics.json eval-results/*-binary-*/metrics.json \
	  eval-results/*-rescored-*/metrics.json eval-results/*+*/metrics.json

clean:
	rm -rf $(VENV) $(LEAN) .fmsearch bench-results .pytest_cache
