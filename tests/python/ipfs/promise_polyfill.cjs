// Promise.withResolvers polyfill for js-ipfs (npm `ipfs@0.66.1`) on Node 20.
//
// Why: some of js-ipfs's transitive dependencies, resolved to their current
// releases by npm (e.g. `mortice`, `it-queue`, `abort-error`), call
// `Promise.withResolvers()`, which only exists natively from Node 22. On
// Node 20 the daemon would fail with "Promise.withResolvers is not a
// function". Loaded before js-ipfs via NODE_OPTIONS="--require <this file>"
// (see tests/python/ipfs/node.py). It is a no-op where the method exists.
'use strict'

if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}
