/* Refusals the operator must see. Dash shows nothing when the server refuses a callback (403: a permission the
   operator lacks, 401: signed out, 413, 429 ...) or fails (5xx, no answer): the button seems to do nothing.
   This wraps window.fetch for Dash's /_dash-update-component requests and shows the server's message (JSON
   {message}, already in the operator's language) in an alert at the top of the page; a failure without a
   message shows the generic texts the page root carries (data-callback-failed, data-server-unreachable).
   Every page, present and future, gets it: Dash serves every file under assets/ (no inline script: CSP). */
(function () {
  "use strict";
  var ROUTE = "/_dash-update-component";
  var original = window.fetch;
  if (typeof original !== "function") { return; }

  function rootText(name, fallback) {
    var root = document.getElementById("app-root");
    return (root && root.getAttribute("data-" + name)) || fallback;
  }

  function close(box) {
    if (box && box.parentNode) { box.parentNode.removeChild(box); }
  }

  // One alert at a time: a second refusal replaces the first instead of stacking copies of it.
  function show(message, details) {
    close(document.getElementById("refusal-alert"));
    var box = document.createElement("div");
    box.id = "refusal-alert";
    box.className = "alert alert-danger alert-dismissible shadow refusal-alert";
    box.setAttribute("role", "alert");
    box.setAttribute("aria-live", "assertive");
    if (details.status) { box.setAttribute("data-status", String(details.status)); }
    if (details.permission) { box.setAttribute("data-permission", [].concat(details.permission).join(" ")); }
    var text = document.createElement("span");
    text.className = "refusal-message";
    text.textContent = message;
    box.appendChild(text);
    if (details.login) {  // signed out (expired session, another tab): a way back in
      var link = document.createElement("a");
      link.href = details.login + "?next=" + encodeURIComponent(window.location.pathname + window.location.search);
      link.className = "alert-link ms-2";
      link.textContent = rootText("sign-in", "Sign in");
      box.appendChild(link);
    }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn-close";
    button.setAttribute("aria-label", rootText("close", "Close"));
    button.addEventListener("click", function () { close(box); });
    box.appendChild(button);
    document.body.appendChild(box);
  }

  function isCallback(input) {
    var url = typeof input === "string" ? input : (input && input.url) || "";
    return url.indexOf(ROUTE) !== -1;
  }

  function report(response) {
    if (response.ok || response.status === 204) { return; }
    response.clone().json().then(function (body) {
      body = body || {};
      show(body.message || rootText("callback-failed", "The server could not complete this action."),
           {status: response.status, permission: body.permission, login: body.login});
    }, function () {
      show(rootText("callback-failed", "The server could not complete this action."), {status: response.status});
    });
  }

  window.fetch = function (input, init) {
    var promise = original.apply(this, arguments);
    if (!isCallback(input)) { return promise; }
    return promise.then(function (response) {
      try { report(response); } catch (e) { /* showing a message must never break the callback itself */ }
      return response;
    }, function (error) {
      if (!error || error.name !== "AbortError") {  // an aborted request was given up on purpose
        show(rootText("server-unreachable", "The server did not answer."), {});
      }
      throw error;
    });
  };
}());
