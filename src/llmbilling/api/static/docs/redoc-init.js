// Starts ReDoc on the OpenAPI document named by this script tag (no inline script: the page's
// Content-Security-Policy allows scripts from this origin only).
"use strict";
(function () {
  var url = document.currentScript.dataset.openapiUrl;
  Redoc.init(url, { hideDownloadButton: false }, document.getElementById("redoc"));
})();
