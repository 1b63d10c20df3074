# The two commands a new user runs: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-fast test-integration bench evaluate evaluate-sift evaluate-modes clean

$(BIN)/fmsearch: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/fmsearch

## Set up, get FMNIST, ingest the 60,000-image gallery with every available
## method into the embedded store, query each collection.
demo: install
	$(BIN)/fmsearch data
	$(BIN)/fmsearch ingest --method all
	$(BIN)/fmsearch collections
	@for m in pixels autoencoder siamese resnet101; do \
	  if $(BIN)/fmsearch collections --json | grep -q "\"fmnist_$$m\""; then \
	    echo "== $$m: test image 0 (an Ankle boot), its 5 nearest train images"; \
	    $(BIN)/fmsearch query --id 60000 --method $$m -k 5 || exit 1; \
	  else echo "== $$m: not ingested (see the ingest output above)"; fi; \
	done
	$(BIN)/fmsearch query --id 60000 --method siamese -k 5 --class Sneaker
	$(BIN)/fmsearch query --id 60000 --method pixels -k 5 --rerank sift
	$(BIN)/fmsearch compare 60000 60001 --out matches.png

## Set up and run the test suite (integration tests skip, with the reason, without a server).
test: install
	$(BIN)/python -m pytest -q

## The quick loop while changing code: everything but the multi-second tests
## (marked slow) and the server tests. `make test` runs them all.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not integration"

## Only the tests against a real Qdrant server (Docker engine or QDRANT_URL).
test-integration: install
	$(BIN)/python -m pytest -q -m integration

bench: install
	$(BIN)/fmsearch bench

## Full test-split evaluation of every ingested method (README's results table).
evaluate: install
	$(BIN)/fmsearch evaluate --method pixels --queries all --exact
	@for m in pixels autoencoder siamese resnet101; do \
	  if $(BIN)/fmsearch collections --json | grep -q "\"fmnist_$$m\""; then \
	    $(BIN)/fmsearch evaluate --method $$m --queries all || exit 1; fi; \
	done
	$(BIN)/fmsearch results eval-results/*/metrics.json

## SIFT rerank: category task with and without it, and near-duplicates, per method.
evaluate-sift: install
	$(BIN)/fmsearch ingest --method sift
	@for m in pixels autoencoder siamese; do \
	  $(BIN)/fmsearch evaluate --method $$m --queries all --rerank sift || exit 1; \
	  $(BIN)/fmsearch evaluate --method $$m --task near-duplicate || exit 1; \
	done
	$(BIN)/fmsearch results eval-results/*-sift-maxsim/metrics.json

## Search modes (docs/search-modes.md): quantised collections, every mode on the
## full test split, the quantisation and modes benchmarks, then the table.
evaluate-modes: install
	$(BIN)/fmsearch ingest --method pixels --quantization int8
	$(BIN)/fmsearch ingest --method autoencoder --quantization int8
	$(BIN)/fmsearch ingest --method autoencoder --quantization binary
	$(BIN)/fmsearch bench --suite quantization --queries 1000
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
	$(BIN)/fmsearch bench --suite modes
	$(BIN)/fmsearch results --modes --bench bench-results/modes.json \
	  eval-results/pixels/metrics.json eval-results/autoencoder/metrics.json eval-results/siamese/metrics.json \
	  eval-results/*-int8-*/metrics.json eval-results/*-binary-*/metrics.json \
	  eval-results/*-rescored-*/metrics.json eval-results/*+*/metrics.json

clean:
	rm -rf $(VENV) .fmsearch bench-results .pytest_cache
