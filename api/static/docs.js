// Starts Swagger UI on the app's own OpenAPI document. A file rather than an inline script, so that the
// page's Content-Security-Policy can forbid inline scripts (script-src 'self').
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var container = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: container.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    // The validator badge sends the document to validator.swagger.io: no call leaves the app's origin.
    validatorUrl: null,
    deepLinking: true,
    // Keys pasted into "Authorize" are forgotten with the page, never kept in the browser's storage.
    persistAuthorization: false,
    displayOperationId: true,
    defaultModelsExpandDepth: 0,
  });
});
