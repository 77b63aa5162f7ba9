// Starts Swagger UI on the OpenAPI document named by this script tag (no inline script: the
// page's Content-Security-Policy allows scripts from this origin only).
"use strict";
(function () {
  var url = document.currentScript.dataset.openapiUrl;
  window.ui = SwaggerUIBundle({
    url: url,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // the default would send the document to validator.swagger.io
  });
})();
