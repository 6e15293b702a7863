# Two commands do all set-up on a fresh machine:  `make demo` (the main job), `make test`.
# Both create .venv with everything the project needs when it is absent.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dgm-installed
EXTRAS ?= train,sim,bags,ros-wheels,test
PYTEST_ARGS ?=

.PHONY: venv demo test lint bench-deps bench-datasets retrain-loop clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned (==2.13.0) in setup.py: a CPU wheel; a looser pin pulls CUDA builds.
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	# MetaWorld 3.1.1 pins mujoco==3.3.0 but runs on ours with one fix
	# (dgm_policy_ros/sim/metaworld_tasks.py): installed without its pins; its own
	# dependencies (scipy, imageio) come with the sim extra.
	$(BIN)/python -m pip install --quiet --no-deps metaworld==3.1.1
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/dgm demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS),bench]'
	# --no-deps: d3rlpy pins gymnasium==1.0.0 but runs on ours (see setup.py, 'bench').
	$(BIN)/python -m pip install --quiet --no-deps d3rlpy==2.8.1

bench-datasets: $(STAMP)
	$(BIN)/python -m bench.datasets --envs Hopper-v5 HalfCheetah-v5 --steps-per-dataset 100000

# The retraining loop in one command (README, "The retraining loop"): the default policy with
# exploration noise in sim-in-the-loop, recorded; the bag converted; the policy fine-tuned on it
# plus its original data, and both scored. Needs the bench datasets (make bench-datasets).
LOOP ?= data/retrain-loop
retrain-loop: $(STAMP)
	rm -rf $(LOOP)
	$(BIN)/dgm sim-loop --bundle models/hopper_flow_bc --episodes 10 --lockstep \
		--exploration-noise 0.1 --record $(LOOP)/bag --plot $(LOOP)/loop.png
	$(BIN)/dgm bag2minari $(LOOP)/bag --spec config/sim_recording.yaml \
		--dataset robot/hopper/retrain-loop-v0 --env Hopper-v5 --overwrite
	$(BIN)/dgm retrain --bundle models/hopper_flow_bc --dataset robot/hopper/retrain-loop-v0 \
		--mix-original --steps 5000 --out $(LOOP)/run --bundle-out $(LOOP)/bundle --quiet

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
