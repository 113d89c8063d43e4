# The libFuzzer harness of the receive path (included by the firmware Makefile).
#   make fuzz RUNS=10000000   build it and run it through python -m armbus.tools.campaigns.cfuzz (seed corpus from
#                             docs/test-vectors.json, the regression inputs first; prints executions, exec/s,
#                             coverage and crashes)
#   make fuzz-build           only the binary ($(BUILD)/fuzz/fuzz_receive); needs clang with its fuzzer runtime
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
RUNS       ?= 100000
PYTHON     ?= $(if $(wildcard ../../.venv/bin/python),../../.venv/bin/python,python3)

.PHONY: fuzz fuzz-build

fuzz-build: $(BUILD)/fuzz/fuzz_receive

$(BUILD)/fuzz/fuzz_receive: fuzz/fuzz_receive.c $(FW_SRC) sil/sil_board.c $(HEADERS)
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(WARN) $(FPFLAGS) $(FUZZ_FLAGS) -Iinclude -Igen -Isil -o $@ fuzz/fuzz_receive.c $(FW_SRC) sil/sil_board.c -lm

fuzz: fuzz-build
	cd ../.. && $(PYTHON) -m armbus.tools.campaigns.cfuzz --runs $(RUNS) --binary $(abspath $(BUILD)/fuzz/fuzz_receive)
