# make demo: set up and run the main job on embedded synthetic data.
# make test: set up and run the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo_out
DEMO_MINUTES ?= 2.5

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# two test processes (pytest-xdist), one torch and one numba thread each: the tests are small, and two
# threads per process on a busy 2-core machine oversubscribe it (measured 20-30x slower under load; the
# numba-parallel grid kernels beside torch training, 7x)
test: $(STAMP)
	OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2

demo: $(STAMP)
	$(BIN)/skymorph synth $(DEMO)/galaxies --galaxies 80 --particles 10000 --seed 1 --overwrite
	$(BIN)/skymorph maps build $(DEMO)/galaxies --out $(DEMO)/maps.h5 --size 64 --rotations 3 --seed 1 --workers 2 \
		--splits 0.65,0.1,0.25 --overwrite
	$(BIN)/skymorph maps info $(DEMO)/maps.h5
	$(BIN)/skymorph maps show $(DEMO)/maps.h5 --index 0 --out $(DEMO)/view0.png --overwrite
	$(BIN)/skymorph benchmark --data $(DEMO)/maps.h5 --pairs gas:hi,gas:dm,gas:star --methods baseline,unet,pix2pix \
		--max-minutes $(DEMO_MINUTES) --base-channels 16 --seed 1 --out $(DEMO)/bench --no-progress --overwrite
	@echo "Demo outputs in $(DEMO)/: galaxies/ (TNG-format cutouts), maps.h5 (map store), view0.png,"
	@echo "  bench/results.md (tables) and the report: $(DEMO)/bench/report.html"

bench: $(STAMP)
	$(BIN)/python benchmarks/projection.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/diffusion.py
	$(BIN)/python benchmarks/pm.py --steps 3 --repeat 1   # JaxPM reference: pip install -e ".[bench]"
	$(BIN)/python benchmarks/reconstruct.py
	$(BIN)/python benchmarks/grid.py --steady

clean:
	rm -rf $(VENV) $(DEMO)
