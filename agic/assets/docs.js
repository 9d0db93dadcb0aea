/* agic docs site, opened from disk (file://).
   MkDocs Material runs its search in a Web Worker, and browsers refuse to start a worker from a file: the search box
   would stay empty. On file:// pages only, this stands in for `Worker`: the worker's script runs in a hidden iframe of
   the page (same origin), messages pass as events. The search index comes from search/search_index.js (written by
   `agic docs`), which the theme reads on file:// pages. Served over HTTP, nothing here runs. */
(function () {
  "use strict";
  if (location.protocol !== "file:") return;

  function FileWorker(url) {
    var target = document.createDocumentFragment(), self = this, queue = [], ready = false;
    var frame = document.createElement("iframe");
    frame.hidden = true;
    frame.title = "search";
    (document.body || document.documentElement).appendChild(frame);
    var win = frame.contentWindow;
    win.postMessage = function (data) {                          // the worker's answers, to the page
      setTimeout(function () { target.dispatchEvent(new MessageEvent("message", { data: data })); });
    };
    win.importScripts = function () { throw new Error("importScripts: not available to pages opened from disk"); };
    function deliver(data) {                                     // the page's requests, to the worker
      setTimeout(function () { win.dispatchEvent(new win.MessageEvent("message", { data: data })); });
    }
    var script = win.document.createElement("script");
    script.src = new URL(url, location.href).href;
    script.onload = function () { ready = true; queue.splice(0).forEach(deliver); };
    win.document.head.appendChild(script);
    this.postMessage = function (data) { if (ready) deliver(data); else queue.push(data); };
    this.addEventListener = target.addEventListener.bind(target);
    this.removeEventListener = target.removeEventListener.bind(target);
    this.dispatchEvent = target.dispatchEvent.bind(target);
    this.terminate = function () { frame.remove(); };
  }
  window.Worker = FileWorker;
})();
