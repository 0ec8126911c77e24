// The widget manager (embed.js, ipywidgets 8) typesets widget labels with MathJax 2's MathJax.Hub.Queue;
// the book runs MathJax 3, which has no Hub, so those calls threw "Cannot read properties of undefined
// (reading 'Queue')". Every object assigned to window.MathJax (the configuration, then MathJax 3 itself)
// gets a Hub whose Queue typesets the element with MathJax 3 once it is ready. Loaded before anything else.
(function () {
  var current;
  function queue(job) {
    var el = job && job[2];
    var mj = window.MathJax;
    var run = function () { return mj && mj.typesetPromise ? mj.typesetPromise(el ? [el] : undefined) : null; };
    if (mj && mj.startup && mj.startup.promise) { return mj.startup.promise.then(run); }
    return Promise.resolve().then(run);
  }
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) {
      if (value && typeof value === "object" && !value.Hub) { value.Hub = { Queue: queue }; }
      current = value;
    },
  });
})();
