// The image the app runs now, so that re-provisioning keeps what `azd deploy` last shipped
// instead of resetting the app to the placeholder. Its own module: the lookup must finish
// before the app module redeclares the same container app.

@description('True once the container app exists (azd sets SERVICE_CALLBRIDGE_RESOURCE_EXISTS).')
param exists bool

@description('Name of the container app.')
param name string

resource existingApp 'Microsoft.App/containerApps@2025-01-01' existing = if (exists) {
  name: name
}

output image string = exists ? existingApp.properties.template.containers[0].image : ''
