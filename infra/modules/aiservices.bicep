// The AI Services account Voice Live runs on. Keys are disabled: the app authenticates with
// Entra ID (its user-assigned identity), which needs the custom subdomain.

@description('Name of the account; also its custom subdomain (globally unique).')
param name string

@description('Region of the account: one where Voice Live serves the chosen model.')
param location string

@description('Tags applied to the account.')
param tags object

@description('Principal id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Principal id of the Communication Services resource\'s own identity; empty grants it nothing.')
param acsPrincipalId string = ''

// Built-in roles, by id. Voice Live with Entra ID asks for both, on the account: "Assign the
// `Cognitive Services User` and `Foundry User` roles to your user account or managed identity"
// (MicrosoftDocs/azure-ai-docs, articles/ai-services/speech-service/voice-live-how-to.md and
// voice-live-api-reference-2026-07-15.md).
// - Cognitive Services User: id from MicrosoftDocs/azure-docs,
//   articles/role-based-access-control/built-in-roles/ai-machine-learning.md.
// - Foundry User, formerly "Azure AI User": id from azure-ai-docs,
//   articles/ai-foundry/concepts/rbac-azure-ai-foundry.md; the rename kept the id
//   (articles/foundry/includes/role-rename-note.md).
// Not "Cognitive Services OpenAI User" (5e0bd9bd-...): it does not cover Voice Live.
var cognitiveServicesUserRoleId = 'a97b65f3-24c7-4388-baec-2e87135dc908'
var foundryUserRoleId = '53ca6127-db72-4b80-b1b0-d745d6d5456d'

resource account 'Microsoft.CognitiveServices/accounts@2025-06-01' = {
  name: name
  location: location
  tags: tags
  kind: 'AIServices'
  sku: {
    name: 'S0'
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource appIsCognitiveServicesUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, cognitiveServicesUserRoleId)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesUserRoleId)
  }
}

resource appIsFoundryUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, foundryUserRoleId)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', foundryUserRoleId)
  }
}

// Only for ACS's own AI features (answerCall's cognitiveServicesEndpoint: play/recognize through
// ACS). The bridge itself does not need it, so it is off unless asked for.
resource acsUsesAiServices 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(acsPrincipalId)) {
  name: guid(account.id, acsPrincipalId, cognitiveServicesUserRoleId)
  scope: account
  properties: {
    principalId: acsPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesUserRoleId)
  }
}

output name string = account.name
output endpoint string = 'https://${name}.services.ai.azure.com'
