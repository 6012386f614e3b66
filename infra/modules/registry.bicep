// The container registry azd builds the image in (remoteBuild) and the app pulls from. No admin
// user: the app pulls with its user-assigned identity, which gets AcrPull here.

@description('Name of the registry (5-50 alphanumerics, globally unique).')
param name string

@description('Region of the registry.')
param location string

@description('Tags applied to the registry.')
param tags object

@description('Principal id of the identity that pulls images (the app\'s user-assigned identity).')
param pullPrincipalId string

// Built-in role: AcrPull.
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

resource appPullsImages 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, pullPrincipalId, acrPullRoleId)
  scope: registry
  properties: {
    principalId: pullPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
  }
}

output name string = registry.name
output loginServer string = registry.properties.loginServer
