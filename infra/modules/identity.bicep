// The app's user-assigned identity. User-assigned rather than system-assigned so that its role
// assignments (AcrPull, Cognitive Services User and Foundry User, ACS) exist before the first
// revision pulls and starts: a system identity would only exist once the app does.

@description('Name of the user-assigned identity.')
param name string

@description('Region of the identity.')
param location string

@description('Tags applied to the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
