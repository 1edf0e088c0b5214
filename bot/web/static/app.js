// Starts Web Chat against this server: a token from /api/directline/token, then Direct Line over a
// WebSocket (the local Direct Line under /v3/directline, or Azure's when the server says so).
(async function () {
  'use strict';

  const status = document.getElementById('status');
  const fail = (message) => {
    status.textContent = 'The chat could not start: ' + message;
    status.hidden = false;
  };

  if (!window.WebChat) {
    fail('the Web Chat bundle did not load (run `make webchat`).');
    return;
  }

  let session;
  try {
    const response = await fetch('/api/directline/token', { method: 'POST' });
    session = await response.json();
    if (!response.ok) {
      throw new Error((session.error && session.error.message) || 'HTTP ' + response.status);
    }
  } catch (err) {
    fail(err.message);
    return;
  }

  const directLine = window.WebChat.createDirectLine({
    token: session.token,
    domain: session.domain || location.origin + '/v3/directline',
    webSocket: true
  });

  // Thumbs up/down: Web Chat shows them from the Like/DislikeAction of an answer's Message entity and
  // posts an event when one is pressed. Each action is stamped with the id of the answer it rates (a
  // streamed answer is rated under its stream id, as the bot remembers it), and the event becomes the
  // `message/submitAction` invoke Teams sends, so both channels' feedback lands in the same store.
  const feedback = document.getElementById('feedback');
  const feedbackText = document.getElementById('feedback-text');
  let rated = null;

  const sendFeedback = (replyToId, reaction, comment) =>
    directLine
      .postActivity({
        type: 'invoke',
        name: 'message/submitAction',
        from: { id: session.userId, role: 'user' },
        replyToId,
        value: {
          actionName: 'feedback',
          actionValue: { reaction, feedback: JSON.stringify({ feedbackText: comment }) }
        }
      })
      .subscribe({ error: (err) => console.warn('feedback was not sent', err) });

  const stampActions = (activity) => {
    const ratedId = (activity.channelData && activity.channelData.streamId) || activity.id;
    const entities = (activity.entities || []).map((entity) =>
      entity.type === 'https://schema.org/Message' && Array.isArray(entity.potentialAction)
        ? {
            ...entity,
            potentialAction: entity.potentialAction.map((action) => ({
              ...action,
              '@id': ratedId + '|' + action['@type']
            }))
          }
        : entity
    );
    return { ...activity, entities };
  };

  const onVote = (activity) => {
    const action = (activity.entities || [])[0] || {};
    const id = String(action['@id'] || '');
    const cut = id.lastIndexOf('|');
    if (cut < 1) return;
    rated = { replyToId: id.slice(0, cut), reaction: action['@type'] === 'LikeAction' ? 'like' : 'dislike' };
    sendFeedback(rated.replyToId, rated.reaction, '');
    feedbackText.value = '';
    feedback.hidden = false;
    feedbackText.focus();
  };

  feedback.addEventListener('submit', (event) => {
    event.preventDefault();
    if (rated && feedbackText.value.trim()) {
      sendFeedback(rated.replyToId, rated.reaction, feedbackText.value.trim());
    }
    feedback.hidden = true;
  });
  feedback.querySelector('.feedback-close').addEventListener('click', () => {
    feedback.hidden = true;
  });

  const store = window.WebChat.createStore({}, ({ dispatch }) => (next) => (action) => {
    if (action.type === 'DIRECT_LINE/CONNECT_FULFILLED') {
      // Greet on join: ask the bot for its welcome as soon as the connection is up.
      dispatch({
        type: 'WEB_CHAT/SEND_EVENT',
        payload: { name: 'webchat/join', value: { language: navigator.language } }
      });
    } else if (action.type === 'DIRECT_LINE/INCOMING_ACTIVITY' && action.payload.activity.type === 'message') {
      action = { ...action, payload: { ...action.payload, activity: stampActions(action.payload.activity) } };
    } else if (
      action.type === 'DIRECT_LINE/POST_ACTIVITY' &&
      action.payload.activity.name === 'webchat:activity-status/feedback'
    ) {
      onVote(action.payload.activity);
      return undefined;
    }
    return next(action);
  });

  const title = document.body.dataset.title || 'Help desk';
  const initials = title
    .split(/\s+/)
    .filter(Boolean)
    .slice(-2)
    .map((word) => word[0].toUpperCase())
    .join('');

  window.WebChat.renderWebChat(
    {
      directLine,
      store,
      userID: session.userId,
      locale: navigator.language,
      styleOptions: {
        accent: '#0f6cbd',
        primaryFont: '"Segoe UI", system-ui, -apple-system, "Helvetica Neue", Arial, sans-serif',
        backgroundColor: '#ffffff',
        botAvatarInitials: initials,
        botAvatarBackgroundColor: '#0f6cbd',
        userAvatarInitials: 'You',
        userAvatarBackgroundColor: '#5b6573',
        bubbleBackground: '#f1f4f8',
        bubbleBorderWidth: 0,
        bubbleBorderRadius: 12,
        bubbleNubSize: 0,
        bubbleMaxWidth: 640,
        bubbleFromUserBackground: '#0f6cbd',
        bubbleFromUserTextColor: '#ffffff',
        bubbleFromUserBorderWidth: 0,
        bubbleFromUserBorderRadius: 12,
        bubbleFromUserNubSize: 0,
        sendBoxBorderTop: 'solid 1px #dde3ea',
        sendBoxHeight: 56,
        hideUploadButton: true,
        paddingRegular: 12
      }
    },
    document.getElementById('webchat')
  );

  document.querySelector('#webchat input, #webchat textarea')?.focus();
})();
