// Package openapi builds and serves the OpenAPI documents of the served
// resources: /openapi/v2 (JSON and protobuf) and /openapi/v3 with one
// document per group version.
//
// Schemas come from reflection over the Go types of k8s.io/api: fields and
// their json tags, descriptions from each type's SwaggerDoc method, model
// names from OpenAPIModelName, the special types (Quantity, IntOrString,
// Time, ...) through their OpenAPISchemaType methods, and strategic merge
// patch metadata from the patchStrategy and patchMergeKey struct tags.
// Paths list every verb and subresource with the x-kubernetes-action and
// x-kubernetes-group-version-kind extensions and the fieldValidation query
// parameter, which is how kubectl learns that the server validates fields
// itself, and the patch content types that tell kubectl apply to use
// strategic merge patches.
//
// Documents are built on first request and cached; kube-openapi's handlers
// serve them with ETags and content negotiation.
package openapi
