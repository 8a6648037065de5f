-- pulmonode routing: forward each stable image series to the node (DicomModalities "pulmonode").
-- (Lua's SendToModality() takes one instance; a series goes through POST /modalities/{id}/store.)
--
-- A study becomes stable StableAge seconds after its last instance arrived. Only original image
-- series (CT, CR, DX) are forwarded: series the node itself produced (Manufacturer "pulmonode",
-- SeriesNumber 900-999, or a result modality SEG/SR/KO/DOC) never are, so results stored back
-- into the study cannot loop back to the node. Each forwarded series records its instance count
-- in the user metadata "PulmonodeForwarded": when our results later re-stabilise the study,
-- nothing is sent again, while a late instance (count changed) re-sends that series.

PULMONODE_MODALITY = 'pulmonode'
FORWARDED_METADATA = 'PulmonodeForwarded'
IMAGE_MODALITIES = { CT = true, CR = true, DX = true }
RESULT_MODALITIES = { SEG = true, SR = true, KO = true, DOC = true }

function IsOwnResult(tags)
  if RESULT_MODALITIES[tags['Modality'] or ''] then
    return true
  end
  if string.lower(tags['Manufacturer'] or '') == 'pulmonode' then
    return true
  end
  local number = tonumber(tags['SeriesNumber'] or '')
  return number ~= nil and number >= 900 and number <= 999
end

function ShouldForward(tags)
  return IMAGE_MODALITIES[tags['Modality'] or ''] and not IsOwnResult(tags)
end

function ForwardedCount(seriesId)
  local uri = '/series/' .. seriesId .. '/metadata'
  for _, name in pairs(ParseJson(RestApiGet(uri))) do
    if name == FORWARDED_METADATA then
      return tonumber(RestApiGet(uri .. '/' .. FORWARDED_METADATA))
    end
  end
  return nil
end

function StoreToNode(seriesId)
  -- synchronous C-STORE of the whole series through the REST API: a failure raises here
  local request = '{"Resources": ["' .. seriesId .. '"], "Synchronous": true}'
  return RestApiPost('/modalities/' .. PULMONODE_MODALITY .. '/store', request)
end

function ForwardSeries(series)
  local count = #series['Instances']
  if ForwardedCount(series['ID']) == count then
    return
  end
  local ok, err = pcall(StoreToNode, series['ID'])
  if ok then
    -- only a successful send is recorded: a failed one is tried again at the next stable event
    RestApiPut('/series/' .. series['ID'] .. '/metadata/' .. FORWARDED_METADATA, tostring(count))
    print('pulmonode route: forwarded series ' .. series['ID'] .. ' (' .. count .. ' instances)')
  else
    print('pulmonode route: forwarding series ' .. series['ID'] .. ' failed: ' .. tostring(err))
  end
end

function OnStableStudy(studyId, tags, metadata)
  local allSeries = ParseJson(RestApiGet('/studies/' .. studyId .. '/series'))
  for _, series in pairs(allSeries) do
    if ShouldForward(series['MainDicomTags']) then
      ForwardSeries(series)
    end
  end
end
