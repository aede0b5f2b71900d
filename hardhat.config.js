// Hardhat 2 config for the Shardex contracts (same contracts/ as forge and deploy/).
//
// Why the TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD override: Hardhat normally
// downloads the compiler from binaries.soliditylang.org, which is unreachable
// here (only the npm registry is). The npm package `solc@0.8.28` (solc-js,
// WebAssembly) is already in node_modules and is the same build forge uses via
// tools/solc, so we hand Hardhat that build instead. Hardhat then compiles
// fully offline with the exact compiler every other tool uses.
//
// Compiler settings mirror foundry.toml: solc 0.8.28, optimizer on with
// runs = 200, evmVersion cancun, no metadata hash.
"use strict";

// Never prompt for telemetry/analytics consent (e.g. in CI). Hardhat reads this
// env var before the consent prompt; setting it here covers every invocation.
process.env.HARDHAT_DISABLE_TELEMETRY_PROMPT ??= "true";

const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = "0.8.28";
const SOLC_LONG_VERSION = "0.8.28+commit.7893614a";

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion === SOLC_VERSION) {
    return {
      compilerPath: require.resolve("solc/soljson.js"),
      isSolcJs: true,
      version: SOLC_VERSION,
      longVersion: SOLC_LONG_VERSION,
    };
  }
  // Any other version would need a download; let Hardhat try (and fail loudly).
  return runSuper();
});

/** @type {import("hardhat/config").HardhatUserConfig} */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: {
      evmVersion: "cancun",
      optimizer: { enabled: true, runs: 200 },
      // No metadata hash or CBOR trailer: bytecode depends only on sources and
      // settings, and equals what forge and deploy/compile.py produce.
      metadata: { bytecodeHash: "none", appendCBOR: false },
    },
  },
  paths: {
    sources: "./contracts",
    tests: "./tests/hardhat",
    cache: "./build/hardhat/cache",
    artifacts: "./build/hardhat/artifacts",
  },
};
