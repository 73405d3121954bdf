/*
 * Offline Mermaid for Material for MkDocs.
 *
 * Material renders ```mermaid fences itself, but fetches the library from a CDN
 * unless a global `mermaid` already exists. It only ever calls
 * `mermaid.initialize(config)` and then `await mermaid.render(id, text)`.
 * This stand-in answers both and loads the vendored copy on the first render,
 * so pages without a diagram never download its 3.5 MB.
 */
(function () {
  "use strict";
  if (window.mermaid) return;
  // Resolve against this script's own URL: right wherever the site is hosted.
  var src = new URL("mermaid/mermaid.min.js", document.currentScript.src).href;
  var config = {};
  var loading = null;

  function load() {
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = src;
        // The real library replaces window.mermaid with itself.
        script.onload = function () { resolve(window.mermaid); };
        script.onerror = function () { reject(new Error("could not load " + src)); };
        document.head.appendChild(script);
      }).then(function (real) {
        real.initialize(config);
        return real;
      });
    }
    return loading;
  }

  window.mermaid = {
    initialize: function (options) { config = options || {}; },
    render: function (id, text) {
      return load().then(function (real) { return real.render(id, text); });
    },
  };
})();
